//! Idle keepers: one lowest-priority spinning process per core while the benchmark runs.
//!
//! On a virtual machine an idle vCPU halts and the host deschedules it; waking it again for
//! the next request costs from tens of microseconds to milliseconds. Every hop between the
//! load core and the proxy core pays that, and it dwarfs what a proxy adds (measured here:
//! wrk with one connection across cores, p99 4.9 ms without keepers, 0.3 ms with them). A
//! SCHED_IDLE task only runs when nothing else wants the core and is preempted at once by any
//! normal task, so it keeps the core awake without taking time from what is measured; the
//! CPU figures are read per process and do not include it. Off in smoke mode and with
//! `--no-idle-keepers`.

use anyhow::Result;

/// `weft-bench idle-keeper`: become SCHED_IDLE and spin until killed.
pub fn run() -> Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets this process's own scheduling policy; the struct is valid for the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    anyhow::ensure!(
        rc == 0,
        "sched_setscheduler(SCHED_IDLE): {}",
        std::io::Error::last_os_error()
    );
    loop {
        for _ in 0..1_000_000 {
            std::hint::spin_loop();
        }
    }
}
