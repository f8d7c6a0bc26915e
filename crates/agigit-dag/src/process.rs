//! Which process made a lock or a temporary file, and whether it still runs: what tells a file a
//! crash left behind from one another writer is using right now.
//!
//! A process is named by its id and, where the system tells, its start time (so that a new
//! process that reuses the id is not mistaken for the one that made the file). On Linux both come
//! from `/proc`; elsewhere whether a process runs cannot be told, and nothing is called stale.

/// The process that made a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// When it started (clock ticks since boot, as `/proc/<pid>/stat` says), when known.
    pub start: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid),
        }
    }

    /// One line: `pid <pid> start <ticks|->`.
    pub fn encode(&self) -> String {
        match self.start {
            Some(s) => format!("pid {} start {s}\n", self.pid),
            None => format!("pid {} start -\n", self.pid),
        }
    }

    /// Reads [`encode`](Self::encode)'s line; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut f = text.lines().next()?.split(' ');
        if f.next()? != "pid" {
            return None;
        }
        let pid = f.next()?.parse().ok()?;
        if f.next()? != "start" {
            return None;
        }
        let start = match f.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        Some(Owner { pid, start })
    }

    /// Whether the process still runs: `Some(false)` when it certainly does not (no such
    /// process, or another one that started at another time under its id), `None` where the
    /// system cannot tell.
    pub fn is_running(&self) -> Option<bool> {
        if !cfg!(target_os = "linux") || !std::path::Path::new("/proc/self/stat").exists() {
            return None;
        }
        Some(match (start_time(self.pid), self.start) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        })
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), if it runs and the system
/// says.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: count from after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_read_back_and_this_process_runs() {
        let me = Owner::current();
        assert_eq!(Owner::decode(&me.encode()), Some(me));
        assert_eq!(
            Owner::decode("pid 7 start -\n"),
            Some(Owner {
                pid: 7,
                start: None
            })
        );
        assert_eq!(Owner::decode("garbage"), None);
        if cfg!(target_os = "linux") {
            assert_eq!(me.is_running(), Some(true));
            // Our id with another start time: a process that reused the id, not us.
            let reused = Owner {
                start: me.start.map(|s| s + 1),
                ..me
            };
            assert_eq!(reused.is_running(), Some(false));
            // An id no process has (beyond the kernel's pid_max).
            let gone = Owner {
                pid: u32::MAX - 1,
                start: Some(1),
            };
            assert_eq!(gone.is_running(), Some(false));
        }
    }
}
