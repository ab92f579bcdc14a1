//! Recording every request of your own warp service with
//! [`evlog::middleware::log_requests`]: one `api_request` (or, for 5xx,
//! `api_error`) event per request, written through the fire-and-forget
//! [`evlog::Appender`].
//!
//! Run: `cargo run --example warp_middleware`. It sends a few requests to the
//! service in-process (`warp::test`) and prints the events they left; to
//! serve it for real, replace the requests with
//! `warp::serve(routes).run(([127, 0, 0, 1], 3030)).await`.

use std::sync::Arc;

use evlog::{Appender, Config, DayRange, EventLog};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("evlog-warp-{}", std::process::id()));
    let log = EventLog::open(Config::new(&dir))?;
    let appender = Arc::new(Appender::new(log.clone()));

    // The service: two routes, wrapped by the middleware. The user of a
    // request comes from whatever your service authenticates; here a header.
    let hello = warp::path!("hello" / String).map(|name| format!("hello {name}"));
    let fail =
        warp::path!("fail").map(|| warp::reply::with_status("oops", StatusCode::BAD_GATEWAY));
    let routes = hello.or(fail).with(evlog::middleware::log_requests(
        appender.clone(),
        |h: &HeaderMap| {
            h.get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        },
    ));

    for (path, user) in [
        ("/hello/ada", Some("ada")),
        ("/fail", None),
        ("/nope", Some("bob")),
    ] {
        let mut req = warp::test::request()
            .path(path)
            .header("x-request-id", format!("req-{path}"));
        if let Some(u) = user {
            req = req.header("x-user", u);
        }
        let resp = req.reply(&routes).await;
        println!("{path} -> {}", resp.status());
    }

    appender.flush(); // normally: on shutdown (also done on drop)
    println!("\nevents in {}:", dir.display());
    for r in log.scan(DayRange::all())? {
        let e = r?.event;
        println!(
            "  {:<11} {:<9} {:<8} {:<24} {:.2} ms",
            e.event_type.as_str(),
            e.user_id,
            e.status.as_str(),
            e.action_description,
            e.duration_ms.unwrap_or_default()
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
