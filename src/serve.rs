//! Serving the router on hyper with the bounds `axum::serve` does not set: a client gets
//! [`HEADER_TIMEOUT`] to send a request's header (a connection that sends half a header, or
//! nothing, is closed then), and at most [`max_connections`] connections are open at once —
//! below the process's file-descriptor limit, so a flood of idle connections cannot take the
//! descriptors the store, the logs and the children need. Past the cap, new connections wait
//! in the kernel's accept queue until one closes. The soft descriptor limit is raised to the
//! hard one at start ([`raise_fd_limit`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request's header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Raises the soft limit on open files to the hard limit; returns the soft limit then.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        lim.rlim_cur
    }
}

/// Connections allowed at once for a descriptor limit of `nofile`: an eighth of it (at least
/// 64) is kept for the store, logs, reports, git and the boards.
pub fn max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 8).max(64);
    usize::try_from(nofile.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let mut full = false;
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        if full {
            full = false;
            tracing::info!("accepting connections again");
        }
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory: wait a little for some to be released.
                tracing::warn!(error = %e, "accept failed");
                drop(permit);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        if permits.available_permits() == 0 {
            full = true;
            tracing::warn!(
                max_connections,
                "connection limit reached: new connections wait until one closes"
            );
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_descriptor_limit() {
        assert_eq!(max_connections(1024), 1024 - 128);
        assert_eq!(max_connections(256), 256 - 64);
        assert_eq!(max_connections(50), 16);
        assert!(max_connections(1 << 20) < 1 << 20);
    }
}
