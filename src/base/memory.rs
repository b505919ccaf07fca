//! What the process and its container use in memory, read from Linux's `/proc` and cgroup v2
//! files when `/metrics` is scraped (a few microseconds; never on the per-connection path).
//! An operator alerts on the container's use against its limit: that is what the kernel's OOM
//! killer compares, and it includes the socket buffers the kernel charges to the pod, which the
//! process's resident set does not.

/// One reading; a figure the machine does not offer is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryReading {
    /// The process's resident set (`VmRSS` of `/proc/self/status`).
    pub resident_bytes: Option<u64>,
    /// The container's use (`memory.current` of its cgroup).
    pub cgroup_bytes: Option<u64>,
    /// The container's limit (`memory.max`); `None` when unlimited.
    pub cgroup_limit_bytes: Option<u64>,
}

/// The process's own cgroup, as the container sees it (cgroup namespace: its root).
const CGROUP_DIR: &str = "/sys/fs/cgroup";

/// Reads the figures now.
pub fn read() -> MemoryReading {
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| vm_rss_bytes(&status));
    let cgroup = |file: &str| {
        std::fs::read_to_string(format!("{CGROUP_DIR}/{file}"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    MemoryReading {
        resident_bytes,
        cgroup_bytes: cgroup("memory.current"),
        // "max" (no limit) does not parse: None.
        cgroup_limit_bytes: cgroup("memory.max"),
    }
}

/// `VmRSS:   1234 kB` in the text of `/proc/self/status`, in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\twsdrain\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("VmRSS: lots"), None);
        assert_eq!(vm_rss_bytes("Name: x"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        // Linux only, like the server: the figure the metrics report is really there.
        assert!(read().resident_bytes.is_some_and(|b| b > 0));
    }
}
