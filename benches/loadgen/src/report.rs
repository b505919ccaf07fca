//! What a run reports: one line on stdout and, with `--csv FILE`, one row appended to FILE (its
//! header first when the file is new); `echo --cdf FILE` adds the latency distribution. The
//! CSV columns are the ones `benches/report/` reads.

use std::io::Write;

use crate::files::StaticResult;
use crate::idle::IdleResult;
use crate::modes::EchoResult;
use crate::options::Options;

/// Appends one row to a CSV file, writing the header first if the file is new.
pub fn append_csv(path: &str, header: &str, row: &str) -> Result<(), String> {
    let new = !std::path::Path::new(path).exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    if new {
        writeln!(f, "{header}").map_err(|e| e.to_string())?;
    }
    writeln!(f, "{row}").map_err(|e| e.to_string())
}

/// `--csv`'s row, after the label: `header` names the columns of `row`.
fn csv(o: &Options, header: &str, row: &str) -> Result<(), String> {
    match &o.csv {
        Some(path) => append_csv(
            path,
            &format!("label,{header}"),
            &format!("{},{row}", o.label),
        ),
        None => Ok(()),
    }
}

pub fn echo(o: &Options, r: &EchoResult) -> Result<(), String> {
    // One list of columns for both the printed line and the CSV row.
    let columns = [
        ("connections", o.connections.to_string()),
        ("in_flight", o.in_flight.to_string()),
        ("size", o.size.to_string()),
        ("msgs_per_sec", format!("{:.0}", r.messages_per_sec)),
        ("p50_us", r.p50_us.to_string()),
        ("p99_us", r.p99_us.to_string()),
        ("p999_us", r.p999_us.to_string()),
        (
            "server_cpu_us_per_msg",
            format!("{:.4}", r.server_cpu_us_per_message),
        ),
        ("errors", r.errors.to_string()),
    ];
    let printed: Vec<String> = columns.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("{}: echo: {}", o.label, printed.join(", "));
    let names: Vec<&str> = columns.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
    csv(o, &names.join(","), &values.join(","))?;
    if let Some(path) = &o.cdf {
        for (us, fraction) in r.histogram.cdf() {
            append_csv(
                path,
                "label,latency_us,fraction",
                &format!("{},{us},{fraction:.6}", o.label),
            )?;
        }
    }
    Ok(())
}

pub fn connect(o: &Options, rate: f64, cpu_us: f64, errors: u64) -> Result<(), String> {
    println!(
        "{}: connect with {} in progress: {rate:.0} connections/s, server CPU {cpu_us:.2} us per connection, errors {errors}",
        o.label, o.connections
    );
    csv(
        o,
        "concurrency,connections_per_sec,server_cpu_us_per_conn,errors",
        &format!("{},{rate:.0},{cpu_us:.3},{errors}", o.connections),
    )
}

pub fn fanout(o: &Options, alive: u64, cpu_us: f64, errors: u64) -> Result<(), String> {
    println!(
        "{}: fanout {} idle conns: {alive} alive messages in {:.0}s, server CPU {cpu_us:.3} us per alive message, errors {errors}",
        o.label,
        o.connections,
        o.seconds.as_secs_f64()
    );
    csv(
        o,
        "connections,alive_messages,server_cpu_us_per_alive,errors",
        &format!("{},{alive},{cpu_us:.4},{errors}", o.connections),
    )
}

pub fn static_files(o: &Options, r: &StaticResult) -> Result<(), String> {
    println!(
        "{}: static {} ({} B) over {} keep-alive connections: {:.0} requests/s, server CPU {:.3} us per request, errors {}",
        o.label,
        o.path,
        r.body_bytes,
        o.connections,
        r.requests_per_sec,
        r.server_cpu_us_per_request,
        r.errors
    );
    csv(
        o,
        "connections,path,body_bytes,requests_per_sec,server_cpu_us_per_req,errors",
        &format!(
            "{},{},{},{:.0},{:.4},{}",
            o.connections,
            o.path,
            r.body_bytes,
            r.requests_per_sec,
            r.server_cpu_us_per_request,
            r.errors
        ),
    )
}

pub fn idle(o: &Options, r: &IdleResult) -> Result<(), String> {
    println!(
        "{label}: {n} idle WebSockets opened in {open:.1}s; server RSS {base:.1} MiB before; per connection: \
         {idle:.0} B idle, {msg:.0} B after one message each, {alive} after one alive round; \
         kernel per connection: {tcp:.0} B TCP buffers, ~{slab:.0} B slab (server side)",
        label = o.label,
        n = o.connections,
        open = r.open_secs,
        base = r.rss_before as f64 / 1048576.0,
        idle = r.rss_per_idle,
        msg = r.rss_per_after_message,
        alive = r
            .rss_per_after_alive
            .map_or("n/a".into(), |v| format!("{v:.0} B")),
        tcp = r.kernel_tcp_per,
        slab = r.kernel_slab_per,
    );
    csv(
        o,
        "connections,rss_before,rss_per_idle,rss_per_after_message,rss_per_after_alive,kernel_tcp_per,kernel_slab_per",
        &format!(
            "{},{},{:.1},{:.1},{},{:.1},{:.1}",
            o.connections,
            r.rss_before,
            r.rss_per_idle,
            r.rss_per_after_message,
            r.rss_per_after_alive
                .map_or(String::new(), |v| format!("{v:.1}")),
            r.kernel_tcp_per,
            r.kernel_slab_per
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_gets_its_header_once() {
        let path = std::env::temp_dir().join(format!("loadgen-report-{}.csv", std::process::id()));
        let path = path.to_str().unwrap();
        let _ = std::fs::remove_file(path);
        append_csv(path, "label,x", "a,1").unwrap();
        append_csv(path, "label,x", "b,2").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(text, "label,x\na,1\nb,2\n");
    }
}
