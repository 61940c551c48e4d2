//! The `tune` binary: a short dispatch into [`tune::cli`].
//!
//! It starts from the C `main`, not through the Rust runtime's start-up. That start-up
//! sets up a handler that reports a stack overflow: to find the main thread's guard
//! page it has glibc read and parse `/proc/self/maps`, then maps a signal stack and
//! installs two handlers: 22 system calls, ~80 µs a run of a Rust hello on the
//! development VM and 0.12 ms of a sysctl-path plan there (README, Benchmark). What tune relies on from that start-up is
//! done here, as the runtime does it:
//!
//! - **Standard streams that are closed are reopened on `/dev/null`**, so the next
//!   file tune opens never takes fd 0, 1 or 2 and receives what is printed (a root
//!   process writing its report into a configuration file it has open).
//! - **`SIGPIPE` is ignored**: a reader that goes away is an `EPIPE` error, which tune
//!   handles (it ends quietly, exit 0, see `cli::run`), never a signal that kills an
//!   apply between two writes.
//!
//! What is lost is the message on a stack overflow: the kernel's guard gap below the
//! main stack still stops the overflow, and the process dies of `SIGSEGV` instead of
//! printing "has overflowed its stack" and aborting. The arguments reach `std::env`
//! as before (glibc passes them to every initialiser), and `std::process::exit`
//! flushes stdout as the runtime's return from `main` does.

#![no_main]

/// The process's entry, called by the C library.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    sanitize_standard_fds();
    ignore_sigpipe();
    std::process::exit(tune::cli::run());
}

/// Opens `/dev/null` on each of fds 0–2 that is closed, as the Rust runtime does
/// (`poll` finds them in one call; `fcntl` where `poll` cannot run). Aborts if one
/// cannot be opened: carrying on would let a file take its number.
fn sanitize_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    let closed: [bool; 3] = loop {
        // SAFETY: `fds` is a valid array of three pollfd for the call's duration.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1 {
            break fds.map(|p| p.revents & libc::POLLNVAL != 0);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            // Where poll is refused (a sandbox, no memory), ask each fd.
            Some(libc::EINVAL | libc::EAGAIN | libc::ENOMEM) => {
                break [0, 1, 2].map(|fd| {
                    // SAFETY: F_GETFD on any number only reads the descriptor table.
                    let failed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
                    failed && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                });
            }
            _ => std::process::abort(),
        }
    };
    for (fd, closed) in closed.into_iter().enumerate() {
        // SAFETY: a NUL-terminated path; the new fd takes the lowest free number,
        // which is this closed one (the lower ones are open or reopened already).
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) } != fd as i32 {
            std::process::abort();
        }
    }
}

/// Ignores `SIGPIPE`, as the Rust runtime does by default.
fn ignore_sigpipe() {
    // SAFETY: setting a disposition of SIG_IGN runs no code of ours in a handler.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        std::process::abort();
    }
}
