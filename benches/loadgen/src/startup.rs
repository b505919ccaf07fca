//! `startup --server PATH [--runs N]`: time from spawning the server to its "listening" log
//! line, median and worst of N runs (each server is then stopped with SIGKILL).

use crate::options::usage;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut server = None;
    let mut runs = 20usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--server", Some(path)) => server = Some(path.clone()),
            ("--runs", Some(n)) => {
                runs = n
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| format!("bad --runs: {n} (at least 1)"))?
            }
            _ => return Err(usage()),
        }
    }
    let server = server.ok_or("--server is required")?;
    let mut times = Vec::new();
    for _ in 0..runs {
        // The test kit's launcher (loopback, ephemeral ports) notes when it read the listening
        // line, so its thread hand-off is not counted.
        let mut child = testkit::server::Launch::new(&server).start()?;
        times.push(child.listening_after());
        child.kill()?;
    }
    times.sort();
    println!(
        "startup: spawn to listening: median {:.2} ms, worst {:.2} ms over {} runs",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(args: &str) -> Result<(), String> {
        run(&args
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>())
    }

    #[test]
    fn zero_or_bad_runs_are_refused_before_any_start() {
        // The server path does not exist: these must fail on --runs, before launching it.
        assert_eq!(
            run_with("--server /nonexistent --runs 0").unwrap_err(),
            "bad --runs: 0 (at least 1)"
        );
        assert_eq!(
            run_with("--server /nonexistent --runs many").unwrap_err(),
            "bad --runs: many (at least 1)"
        );
    }
}
