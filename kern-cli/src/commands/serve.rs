//! `kern serve`: the HTTP API (and whatever else kern-server serves) over the database, until
//! interrupted: a first Ctrl-C or SIGTERM lets the requests under way be answered, a second stops
//! at once.

use std::io::Write as _;

use kern_server::{Auth, Server};
use serde_json::json;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::exit::{Failure, Outcome};
use crate::interrupt::Interrupt;
use crate::target::Context;

pub async fn run(args: ServeArgs, ctx: &Context) -> Outcome {
    let store = ctx.store("serve")?;
    // The server says why a request failed only in its log (its answers never echo internals).
    let _ = tracing_subscriber::fmt().with_max_level(args.log).with_writer(std::io::stderr).try_init();
    let mut interrupt = Interrupt::listen()?;
    let auth = match &args.open {
        Some(principal) if !args.bind.ip().is_loopback() => {
            return Err(Failure::usage(format!(
                "--open serves without authentication, only on a loopback address: {} is not one (run it as \
                 `{principal}` on 127.0.0.1, or leave out --open)",
                args.bind.ip()
            )));
        }
        Some(principal) => Auth::open_on_loopback(principal.clone()),
        None => Auth::api_keys(),
    };
    let mut builder = Server::builder().store(store).auth(auth).secure_cookies(args.secure_cookies);
    if let Some(origin) = &args.public_origin {
        builder = builder.public_origin(origin.as_str());
    }
    let server = builder.build().map_err(|err| Failure::error(format!("cannot build the server: {err}")))?;
    let listener = TcpListener::bind(args.bind)
        .await
        .map_err(|err| Failure::error(format!("cannot listen on {}: {err}", args.bind)))?;
    let address = listener.local_addr().map_err(|err| Failure::error(format!("cannot read the address: {err}")))?;
    let url = format!("http://{address}");
    if ctx.out.json {
        ctx.out.json_line(&json!({"listening": url}))?;
    } else {
        ctx.out.line(&format!("serving {url} (Ctrl-C or SIGTERM stops)"))?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.serve_until(listener, async move {
        let _ = stopped.await;
    });
    let mut serving = std::pin::pin!(serving);
    let failed = |err: std::io::Error| Failure::error(format!("the server stopped: {err}"));
    tokio::select! {
        served = &mut serving => return served.map_err(failed),
        () = interrupt.received() => {}
    }
    if !ctx.out.json {
        let _ = writeln!(
            std::io::stderr(),
            "stopping: answering the requests under way (a second Ctrl-C or SIGTERM stops at once)"
        );
    }
    let _ = stop.send(());
    tokio::select! {
        served = serving => served.map_err(failed),
        () = interrupt.received() => Ok(()),
    }
}
