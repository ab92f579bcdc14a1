//! Replication through a real NATS JetStream (issue 16): edges publish
//! their committed events, a follower copies them into its own store,
//! exactly once, through NATS restarts and kills of every process.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::nats::NatsServer;
use crate::serve::{Opts, Serve, client};
use crate::util::Store;

/// `evlog serve` publishing to `urls` as `node`.
fn edge(store: &Store, urls: &str, node: &str) -> Serve {
    Serve::start_opts(
        store,
        Opts {
            args: &[],
            env: &[("EVLOG_REPLICATE_TO", urls), ("EVLOG_NODE", node)],
        },
    )
}

/// As [`edge`], with a checkpoint key: it publishes its signed
/// checkpoints to the stream too, every second.
fn signing_edge(store: &Store, urls: &str, node: &str) -> Serve {
    store.run(&["checkpoint", "init"], b"").expect_code(0);
    Serve::start_opts(
        store,
        Opts {
            args: &[],
            env: &[
                ("EVLOG_REPLICATE_TO", urls),
                ("EVLOG_NODE", node),
                ("EVLOG_CHECKPOINT_INTERVAL", "1s"),
            ],
        },
    )
}

/// `evlog serve` following the stream at `urls` as `node`.
fn follower(store: &Store, urls: &str, node: &str) -> Serve {
    Serve::start_opts(
        store,
        Opts {
            args: &[],
            env: &[("EVLOG_FOLLOW", urls), ("EVLOG_NODE", node)],
        },
    )
}

/// Posts batches of 10 events to `base` from one thread until `stop`, or
/// until the server is gone; returns the ids it acknowledged (201).
fn load(
    base: String,
    key: String,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Uuid>> {
    std::thread::spawn(move || {
        let http = client();
        let mut acked = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let batch: Vec<Value> = (0..10)
                .map(|i| {
                    json!({"event_type": "deploy", "user_id": "ops", "status": "success",
                           "action_description": format!("{tag} {}", n * 10 + i)})
                })
                .collect();
            n += 1;
            let Ok(r) = http
                .post(format!("{base}/events"))
                .header("x-api-key", &key)
                .json(&batch)
                .send()
            else {
                return acked; // The server was killed.
            };
            if r.status() != 201 {
                panic!(
                    "{tag}: POST /events answered {}: {:?}",
                    r.status(),
                    r.text()
                );
            }
            let body: Value = r.json().unwrap();
            acked.extend(
                body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().parse::<Uuid>().unwrap()),
            );
        }
        acked
    })
}

/// The ids of every event in `store`, with their `origin`.
fn stored(store: &Store) -> Vec<(Uuid, Option<String>)> {
    store
        .records()
        .into_iter()
        .map(|r| (r.event.id.unwrap(), r.event.origin))
        .collect()
}

/// Waits until `s` has published everything in its files.
fn published(s: &Serve) {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let h: Value = http
            .get(s.url("/health"))
            .send()
            .ok()
            .and_then(|r| r.json().ok())
            .unwrap_or(Value::Null);
        let p = &h["replication"]["publish"];
        if p["lag_events"] == 0 && p["link"] == "up" {
            return;
        }
        assert!(Instant::now() < deadline, "not all published: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the follower's store holds every id of `want`, then checks
/// that it holds each once, with the origin it came from, and nothing else
/// with an origin.
fn holds_exactly_once(follower: &Store, want: &HashMap<Uuid, String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have: HashSet<Uuid> = stored(follower).into_iter().map(|(id, _)| id).collect();
        let missing = want.keys().filter(|id| !have.contains(id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower lacks {missing} of {} events",
            want.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let copies: Vec<(Uuid, String)> = stored(follower)
        .into_iter()
        .filter_map(|(id, origin)| origin.map(|o| (id, o)))
        .collect();
    let mut seen = HashSet::new();
    for (id, origin) in &copies {
        assert!(seen.insert(*id), "{id} copied twice");
        assert_eq!(want.get(id), Some(origin), "{id}: origin");
    }
    assert_eq!(copies.len(), want.len(), "copies beyond the edges' events");
}

/// Every event of the edges' stores, by id, with its node.
fn edges_events(edges: &[(&Store, &str)]) -> HashMap<Uuid, String> {
    let mut all = HashMap::new();
    for (store, node) in edges {
        for (id, origin) in stored(store) {
            assert_eq!(origin, None, "an edge's own event has no origin");
            all.insert(id, node.to_string());
        }
    }
    all
}

/// Waits until every edge has published its files, checks that each id
/// acknowledged to a client is in its edge's store, and that the follower
/// holds every edge event exactly once; returns them.
fn all_copied_once(
    edges: &[(&Serve, &Store, &str)],
    follower: &Store,
    acked: &[Uuid],
) -> HashMap<Uuid, String> {
    for (s, _, _) in edges {
        published(s);
    }
    let want = edges_events(
        &edges
            .iter()
            .map(|&(_, store, node)| (store, node))
            .collect::<Vec<_>>(),
    );
    for id in acked {
        assert!(want.contains_key(id), "{id} acknowledged but not stored");
    }
    holds_exactly_once(follower, &want);
    want
}

fn verifies(store: &Store, who: &str) {
    let r = store.verify();
    assert!(r.ok(), "{who}: verify: {r:?}");
}

/// (a) One NATS server: two edges under load, one follower. Edge 1 also
/// publishes its signed checkpoints, which the follower skips.
#[test]
fn two_edges_under_load_one_follower_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::single(tmp.path());
    let (s1, s2, sf) = (Store::new(), Store::new(), Store::new());
    let e1 = signing_edge(&s1, &nats.url(), "edge-1");
    let e2 = edge(&s2, &nats.url(), "edge-2");
    let f = follower(&sf, &nats.url(), "central");
    let stop = Arc::new(AtomicBool::new(false));
    let loads = vec![
        load(e1.base.clone(), e1.admin.clone(), "e1a", stop.clone()),
        load(e1.base.clone(), e1.admin.clone(), "e1b", stop.clone()),
        load(e2.base.clone(), e2.admin.clone(), "e2a", stop.clone()),
        load(e2.base.clone(), e2.admin.clone(), "e2b", stop.clone()),
    ];
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Uuid> = loads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(
        acked.len() > 200,
        "only {} events acknowledged",
        acked.len()
    );
    let want = all_copied_once(&[(&e1, &s1, "edge-1"), (&e2, &s2, "edge-2")], &sf, &acked);
    // The copies are searchable on the follower, with their origin.
    let http = client();
    let one = acked[acked.len() / 2];
    let got: Value = crate::serve::eventually("the follower's index has the copy", || {
        let r = http
            .get(f.url(&format!("/events/{one}")))
            .header("x-api-key", &f.admin)
            .send()
            .ok()?;
        (r.status() == 200).then(|| r.json().unwrap())
    });
    assert!(
        got["origin"] == "edge-1" || got["origin"] == "edge-2",
        "{got}"
    );
    let h: Value = http.get(f.url("/health")).send().unwrap().json().unwrap();
    assert_eq!(h["replication"]["follow"]["link"], "up", "{h}");
    assert!(
        h["replication"]["follow"]["appended"].as_u64().unwrap() >= want.len() as u64,
        "{h}"
    );
    let metrics = http.get(e1.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("evlog_replication_lag_events 0"),
        "{metrics}"
    );
    assert!(metrics.contains("evlog_replication_link_up 1"), "{metrics}");
    // Edge 1's checkpoints are on the stream; the follower passed over
    // them without refusing one or storing it (checked above: nothing
    // beyond the edges' events).
    let sink = crate::serve::eventually("edge 1's checkpoints on the stream", || {
        let h: Value = http.get(e1.url("/health")).send().ok()?.json().ok()?;
        let sink = h["checkpoints"]["sinks"][0].clone();
        (sink["delivered"].as_u64()? >= 1 && sink["pending"] == 0).then_some(sink)
    });
    assert_eq!(sink["sink"], "nats:EVLOG", "{sink}");
    // An event edge 1 takes now is in the stream after those checkpoints:
    // once the follower holds it, it has been through them.
    let r: Value = http
        .post(e1.url("/events"))
        .header("x-api-key", &e1.admin)
        .json(&crate::serve::deploy("alice", "after the checkpoints"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let after: Uuid = r["id"].as_str().unwrap().parse().unwrap();
    crate::serve::eventually("the follower has the later event", || {
        stored(&sf).iter().any(|(id, _)| *id == after).then_some(())
    });
    assert!(!f.log().contains("FOLLOW_REFUSED"), "{}", f.log());
    drop((e1, e2, f));
    verifies(&s1, "edge-1");
    verifies(&s2, "edge-2");
    verifies(&sf, "follower");
}

/// (c) NATS down for 30 s: the edge keeps answering 201, shows the lag,
/// and the follower catches up once NATS is back.
#[test]
fn nats_down_for_30_s_edges_keep_accepting_and_the_follower_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::single(tmp.path());
    let (s1, sf) = (Store::new(), Store::new());
    let e1 = edge(&s1, &nats.url(), "edge-1");
    let f = follower(&sf, &nats.url(), "central");
    published(&e1);
    nats.kill();
    let stop = Arc::new(AtomicBool::new(false));
    let l = load(e1.base.clone(), e1.admin.clone(), "down", stop.clone());
    let http = client();
    let until = Instant::now() + Duration::from_secs(30);
    let mut saw_down = false;
    while Instant::now() < until {
        let h: Value = http.get(e1.url("/health")).send().unwrap().json().unwrap();
        let p = &h["replication"]["publish"];
        if p["link"] == "down" && p["lag_events"].as_u64().unwrap_or(0) > 0 {
            saw_down = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    let acked = l.join().unwrap();
    assert!(
        acked.len() > 100,
        "only {} acknowledged while NATS was down",
        acked.len()
    );
    assert!(saw_down, "/health never showed the link down with a lag");
    nats.restart();
    all_copied_once(&[(&e1, &s1, "edge-1")], &sf, &acked);
    drop((e1, f));
    verifies(&s1, "edge-1");
    verifies(&sf, "follower");
}

/// (b) A three-node JetStream cluster, stream R3: one NATS node, one edge
/// and the follower killed (-9) in the middle of the load and restarted.
#[test]
fn a_cluster_node_an_edge_and_the_follower_killed_mid_load_lose_and_duplicate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = NatsServer::cluster(tmp.path());
    let urls = cluster
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",");
    let (s1, s2, sf) = (Store::new(), Store::new(), Store::new());
    let r3 = [("EVLOG_STREAM_REPLICAS", "3")];
    let start = |store: &Store, kind: &str, node: &str| {
        let mut env = vec![(kind, urls.as_str()), ("EVLOG_NODE", node)];
        env.extend_from_slice(&r3);
        Serve::start_opts(
            store,
            Opts {
                args: &[],
                env: &env,
            },
        )
    };
    let mut e1 = start(&s1, "EVLOG_REPLICATE_TO", "edge-1");
    let e2 = start(&s2, "EVLOG_REPLICATE_TO", "edge-2");
    let mut f = start(&sf, "EVLOG_FOLLOW", "central");
    let key1 = e1.admin.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = vec![
        load(e1.base.clone(), key1.clone(), "e1", stop.clone()),
        load(e2.base.clone(), e2.admin.clone(), "e2", stop.clone()),
    ];
    std::thread::sleep(Duration::from_secs(3));
    // Mid-load: kill -9 one NATS node, edge 1 and the follower.
    cluster[0].kill();
    e1.kill9();
    f.kill9();
    std::thread::sleep(Duration::from_secs(2));
    cluster[0].restart();
    e1 = start(&s1, "EVLOG_REPLICATE_TO", "edge-1");
    f = start(&sf, "EVLOG_FOLLOW", "central");
    loads.push(load(e1.base.clone(), key1, "e1 again", stop.clone()));
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Uuid> = loads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all_copied_once(&[(&e1, &s1, "edge-1"), (&e2, &s2, "edge-2")], &sf, &acked);
    drop((e1, e2, f));
    verifies(&s1, "edge-1");
    verifies(&s2, "edge-2");
    verifies(&sf, "follower");
}

/// Appends `n` events of `tenant` (None: the default tenant) to the store
/// in `dir` through the library, beside the server that holds it.
fn append_beside(dir: &std::path::Path, tenant: Option<&str>, n: u64) -> Vec<Uuid> {
    let log = evlog::EventLog::open(evlog::Config::new(dir)).unwrap();
    let ids = (0..n)
        .map(|i| {
            let mut e = crate::util::event("beside", i);
            e.tenant = tenant.map(str::to_string);
            log.append(e).unwrap()
        })
        .collect();
    log.close().unwrap();
    ids
}

/// `evlog follow` with a subject filter copies one tenant's events only,
/// says what it did when stopped; and a node that publishes and follows
/// one stream stores its own events once, the others' once, and never
/// publishes a copy again.
#[test]
fn a_filtered_cli_follower_and_a_node_that_publishes_and_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::single(tmp.path());
    let (s1, sb, sr) = (Store::new(), Store::new(), Store::new());
    let e1 = edge(&s1, &nats.url(), "edge-1");
    let both = Serve::start_opts(
        &sb,
        Opts {
            args: &[],
            env: &[
                ("EVLOG_REPLICATE_TO", &nats.url()),
                ("EVLOG_FOLLOW", &nats.url()),
                ("EVLOG_NODE", "both"),
            ],
        },
    );
    let regional = sr
        .cmd()
        .args([
            "follow",
            &nats.url(),
            "--filter",
            "evlog.acme.>",
            "--node",
            "eu",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let acme = append_beside(s1.path(), Some("acme"), 5);
    let default = append_beside(s1.path(), None, 3);
    let own = append_beside(sb.path(), Some("acme"), 4);
    published(&e1);
    published(&both);

    // The regional follower: acme's events of both nodes, nothing else.
    let want: HashSet<Uuid> = acme.iter().chain(&own).copied().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have: HashSet<Uuid> = stored(&sr).into_iter().map(|(id, _)| id).collect();
        if want.is_subset(&have) {
            break;
        }
        assert!(Instant::now() < deadline, "the regional node lacks events");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let copies = stored(&sr);
    assert_eq!(copies.len(), want.len(), "{copies:?}");
    assert!(
        copies
            .iter()
            .all(|(id, o)| want.contains(id) && o.is_some())
    );
    assert!(!copies.iter().any(|(id, _)| default.contains(id)));
    let pid = regional.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = regional.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("stopped: {} event(s) appended", want.len())),
        "{err}"
    );
    // The same consumer with another filter: refused, saying why.
    let mut other = sr
        .cmd()
        .args([
            "follow",
            &nats.url(),
            "--filter",
            "evlog._.>",
            "--node",
            "eu",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &other.id().to_string()])
        .status();
    let _ = other.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(other.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("consumer evlog-eu exists with the filter `evlog.acme.>`"),
        "{err}"
    );
    assert!(err.contains("stopped: 0 event(s) appended"), "{err}");

    // The node that publishes and follows: edge-1's events once (copies),
    // its own once (no origin), and only its own published.
    let edge_events = edges_events(&[(&s1, "edge-1")]);
    holds_exactly_once(&sb, &edge_events);
    let mine: Vec<Uuid> = stored(&sb)
        .into_iter()
        .filter(|(_, o)| o.is_none())
        .map(|(id, _)| id)
        .collect();
    assert!(own.iter().all(|id| mine.contains(id)));
    let metrics = client()
        .get(both.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let published_total = metrics
        .lines()
        .find_map(|l| l.strip_prefix("evlog_replication_published_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(published_total, mine.len().to_string(), "{metrics}");
    drop((e1, both));
    verifies(&s1, "edge-1");
    verifies(&sb, "both");
    verifies(&sr, "regional");
}

/// NATS authentication: with a user and password (flags' env) the edge
/// publishes and the follower copies; a wrong password leaves the link
/// down, names the refusal in `/health`, and the edge still answers 201.
#[test]
fn nats_credentials_are_used_and_a_wrong_password_is_shown_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::single_with(tmp.path(), &["--user", "evlog", "--pass", "s3cret"]);
    let (s1, s2, sf) = (Store::new(), Store::new(), Store::new());
    let start = |store: &Store, kind: &str, node: &str, password: &str| {
        Serve::start_opts(
            store,
            Opts {
                args: &[],
                env: &[
                    (kind, &nats.url()),
                    ("EVLOG_NODE", node),
                    ("EVLOG_NATS_USER", "evlog"),
                    ("EVLOG_NATS_PASSWORD", password),
                ],
            },
        )
    };
    let e1 = start(&s1, "EVLOG_REPLICATE_TO", "edge-1", "s3cret");
    let f = start(&sf, "EVLOG_FOLLOW", "central", "s3cret");
    let wrong = start(&s2, "EVLOG_REPLICATE_TO", "edge-2", "wrong");
    let http = client();
    let r = http
        .post(wrong.url("/events"))
        .header("x-api-key", &wrong.admin)
        .json(&crate::serve::deploy("ops", "while NATS refuses this edge"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let h: Value = crate::serve::eventually("the refusal in /health", || {
        let h: Value = http.get(wrong.url("/health")).send().ok()?.json().ok()?;
        let p = &h["replication"]["publish"];
        // The lag shows what waits even though nothing was ever published.
        let lagging = p["lag_events"].as_u64() > Some(0) && p["lag_seconds"].as_f64() > Some(0.0);
        (p["link"] == "down" && p["last_error"].is_string() && lagging).then_some(h)
    });
    let why = h["replication"]["publish"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("nats://127.0.0.1") && why.contains("authorization"),
        "{why}"
    );
    all_copied_once(&[(&e1, &s1, "edge-1")], &sf, &[]);
    drop((e1, f, wrong));
}
