//! Going to the background: [`run`] (unless it remounts) forks once the arguments are checked and the secret is
//! read; the parent waits on a status pipe (`OK`, or `ERR message`) and exits only when the
//! child reports the mount up or fails, because mount(8) waits for it. The child ([`serve`])
//! connects, mounts, reports, detaches its standard descriptors and serves until unmounted
//! or signalled. Also the process's logging setup (where the lines go: `log.rs`).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rustre_proto::auth::ClusterKey;

use super::log::{Sink, Target, SYSLOG_SOCKET};
use super::options::{check_mountpoint, MountArgs};
use super::syscall::{lazy_unmount, mount, remount};
use super::{connect, serve_metrics, HELPER_NAME, SESSION_CLOSE_TIMEOUT, STATUS_MESSAGE_MAX_BYTES};

fn init_logging(debug: bool) {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    // SAFETY: isatty reads a descriptor's state.
    let terminal = unsafe { libc::isatty(2) } == 1;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(debug && terminal)
        .with_writer(Sink)
        .try_init();
}

/// Mounts and serves until unmounted; goes to the background once the mount is up unless
/// asked to stay in the foreground (with `remount`, changes the flags of the mount there
/// instead, see `syscall::remount`). Returns the exit code. Must be called before any other
/// thread exists (it forks).
pub fn run(mut args: MountArgs) -> i32 {
    init_logging(args.options.debug);
    let fail = |msg: String| {
        eprintln!("{HELPER_NAME}: {msg}");
        1
    };
    args.mountpoint = match check_mountpoint(&args.mountpoint) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if args.options.remount {
        return remount(&args).map_or_else(fail, |()| 0);
    }
    let key = match ClusterKey::load(&args.options.secret_file) {
        Ok(k) => k,
        Err(e) => return fail(e.to_string()),
    };
    let key = match &args.options.admin_secret_file {
        None => key,
        Some(p) => match ClusterKey::load(p) {
            Ok(admin) => key.with_admin(&admin),
            Err(e) => return fail(format!("admin {e}")),
        },
    };
    // Chosen before forking, so that a log file that cannot be opened fails the mount.
    let target = match (&args.options.log_file, args.options.foreground) {
        (Some(p), _) => match Target::choose(Some(p)) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        (None, true) => None,
        (None, false) => match Target::choose(None) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
    };
    if args.options.foreground {
        return match serve(&args, &key, &mut None, target.as_ref()) {
            Ok(()) => 0,
            Err(e) => fail(e),
        };
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (the runtime is built in the child), so the child
    // may go on running Rust code.
    match unsafe { libc::fork() } {
        -1 => fail(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(rd);
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::setsid();
            }
            let mut status = Some(std::fs::File::from(wr));
            let code = match serve(&args, &key, &mut status, target.as_ref()) {
                Ok(()) => 0,
                Err(e) => {
                    // The parent prints it (unless the mount was already reported up).
                    if let Some(mut s) = status {
                        let _ = s.write_all(format!("ERR {e}").as_bytes());
                    }
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd)
                .take(STATUS_MESSAGE_MAX_BYTES)
                .read_to_string(&mut msg);
            if msg == "OK" {
                return 0;
            }
            let mut st = 0;
            // SAFETY: reaps our own child if it already exited.
            unsafe { libc::waitpid(child, &mut st, libc::WNOHANG) };
            match msg.strip_prefix("ERR ") {
                Some(e) => fail(e.to_string()),
                None => fail("the mount daemon exited before the mount was up".into()),
            }
        }
    }
}

/// The daemon's life: connect, mount, report, serve, clean up. `status` is the pipe to the
/// waiting parent; it is closed (taken) once the mount is reported up. The log lines go to
/// `target` once the mount is up (standard error until then, and without one).
fn serve(
    args: &MountArgs,
    key: &ClusterKey,
    status: &mut Option<std::fs::File>,
    target: Option<&Target>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.options.threads)
        .enable_all()
        .thread_name("rustre-client")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Before anything else, so a metrics address that cannot be used fails the mount.
    let _metrics = match &args.options.metrics {
        Some(addr) => Some(rt.block_on(serve_metrics(addr))?),
        None => None,
    };
    let client = rt.block_on(connect(&args.source, &args.options.cluster, key))?;
    let session = match mount(client.clone(), rt.handle().clone(), args) {
        Ok(s) => s,
        Err(e) => {
            let _ = rt.block_on(async {
                tokio::time::timeout(SESSION_CLOSE_TIMEOUT, client.close()).await
            });
            return Err(e);
        }
    };
    if let Some(mut pipe) = status.take() {
        if let Err(e) = pipe.write_all(b"OK") {
            let _ = lazy_unmount(&args.mountpoint);
            return Err(format!("report to the parent: {e}"));
        }
        drop(pipe);
        if let Some(t) = target.filter(|t| t.is_fallback()) {
            // Not where an operator looks first: say so once.
            eprintln!(
                "{HELPER_NAME}: no syslog ({SYSLOG_SOCKET}): the daemon of {} logs to {}",
                args.mountpoint.display(),
                t.describe()
            );
        }
        detach_stdio(target);
    } else if let Some(t) = target {
        redirect_log(t);
    }
    tracing::info!("{} mounted from {}", args.mountpoint.display(), args.source);
    let mountpoint = args.mountpoint.clone();
    rt.spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal: detaching {}", mountpoint.display());
        let _ = lazy_unmount(&mountpoint);
    });
    let served = session.run();
    let _ =
        rt.block_on(async { tokio::time::timeout(SESSION_CLOSE_TIMEOUT, client.close()).await });
    rt.shutdown_timeout(SESSION_CLOSE_TIMEOUT);
    served.map_err(|e| format!("FUSE session: {e}"))
}

/// Standard input and output to /dev/null, standard error to the log `target` (else to
/// /dev/null too), and out of any mount's way.
fn detach_stdio(target: Option<&Target>) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
        if let Some(t) = target {
            t.apply(&null);
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// A foreground mount with `log=`: its lines go to that file from now on.
fn redirect_log(target: &Target) {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        target.apply(&null);
    }
}
