//! The open-file limit. A proxy holds two descriptors per proxied connection (downstream and
//! upstream) plus its pools, so the default soft limit (often 1024) is reached long before the
//! machine is busy. At startup the soft limit is raised to the hard limit, as Envoy's
//! deployments and Istio's proxy do.

/// The soft and hard `RLIMIT_NOFILE` before and after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimits {
    pub soft_before: libc::rlim_t,
    pub soft: libc::rlim_t,
    pub hard: libc::rlim_t,
}

#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error("cannot read the open-file limit (getrlimit RLIMIT_NOFILE): {0}")]
    Read(std::io::Error),
    #[error("cannot raise the open-file soft limit from {from} to {to} (setrlimit RLIMIT_NOFILE): {source}")]
    Raise {
        from: libc::rlim_t,
        to: libc::rlim_t,
        source: std::io::Error,
    },
}

/// Raises the soft open-file limit to the hard one. An unlimited hard limit is capped at the
/// kernel's `fs.nr_open`, the most a process may ask for.
pub fn raise_to_hard_limit() -> Result<FdLimits, FdLimitError> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(FdLimitError::Read(std::io::Error::last_os_error()));
    }
    let before = rl.rlim_cur;
    let target = if rl.rlim_max == libc::RLIM_INFINITY {
        nr_open().unwrap_or(before)
    } else {
        rl.rlim_max
    };
    let limits = |soft| FdLimits {
        soft_before: before,
        soft,
        hard: rl.rlim_max,
    };
    if target <= before {
        return Ok(limits(before));
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: rl.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(FdLimitError::Raise {
            from: before,
            to: target,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(limits(target))
}

fn nr_open() -> Option<libc::rlim_t> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let l = raise_to_hard_limit().expect("raise");
        assert!(l.soft >= l.soft_before);
        if l.hard != libc::RLIM_INFINITY {
            assert_eq!(l.soft, l.hard);
        }
        // Idempotent: a second call finds nothing to raise.
        assert_eq!(raise_to_hard_limit().expect("again").soft, l.soft);
    }
}
