//! Tenants in the console (issue 15): the header tells every key's tenant;
//! an all-tenants admin picks a tenant (a field, kept in the URL as
//! `tenant=`, typed and applied with the keyboard), and any other key
//! sees its own tenant's events only, whatever a link asks for.

use fantoccini::key::Key;
use serde_json::{Value, json};

use super::pages::{Details, Events, Header, SignIn};
use super::{Browser, Site, runtime};

fn ev(desc: &str, tenant: Option<&str>) -> Value {
    let mut e = super::ev("alice", desc);
    if let Some(t) = tenant {
        e["tenant"] = json!(t);
    }
    e
}

#[test]
fn an_all_tenants_admin_picks_a_tenant_and_other_keys_see_their_own() {
    let site = Site::start();
    let acme_admin = site.add_key_with("admin", "boss", &["--tenant", "acme"]);
    // The default tenant's (2), acme's (3) and globex's (1), by the
    // all-tenants admin (which may name any tenant).
    site.append(json!([
        ev("default one", None),
        ev("default two", None),
        ev("acme one", Some("acme")),
        ev("acme two", Some("acme")),
        ev("acme three", Some("acme")),
        ev("globex one", Some("globex")),
    ]));
    let base = site.serve.base.clone();
    let admin = site.admin.clone();

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        let events = Events(&b);
        let descriptions = async || {
            let mut d: Vec<String> = events
                .rows()
                .await
                .into_iter()
                .map(|r| r.description)
                .collect();
            d.sort();
            d
        };

        // The all-tenants admin: every tenant, then the one it types.
        b.goto("/").await;
        SignIn(&b).sign_in(&admin).await;
        assert_eq!(Header(&b).who().await, "admin (admin) · all tenants");
        // Commits only: the server's own events (key changes, denials) aside.
        b.goto("/?event_type=commit").await;
        events
            .until("every tenant's events", async |e| e.rows().await.len() == 6)
            .await;
        b.enter("Tenant", "acme").await;
        events
            .until("acme's events", async |e| e.rows().await.len() == 3)
            .await;
        assert_eq!(descriptions().await, ["acme one", "acme three", "acme two"]);
        assert!(
            b.location().await.contains("tenant=acme"),
            "{}",
            b.location().await
        );
        // Its details name the tenant.
        events.key_on_row(0, Key::Enter).await;
        let details = Details(&b);
        let id = events.rows().await[0].id.clone();
        details.wait_for(&id).await;
        assert_eq!(details.field("Tenant").await.as_deref(), Some("acme"));
        details.escape().await;
        // `_` is the default tenant, from a link too; empty is every tenant.
        b.goto("/?event_type=commit&tenant=_").await;
        events
            .until("the default tenant's events", async |e| {
                e.rows().await.len() == 2
            })
            .await;
        assert_eq!(descriptions().await, ["default one", "default two"]);
        let field = b.control("Tenant").await;
        assert_eq!(field.prop("value").await.unwrap().as_deref(), Some("_"));
        b.enter("Tenant", "").await;
        events
            .until("every tenant's events again", async |e| {
                e.rows().await.len() == 6
            })
            .await;
        Header(&b).sign_out().await;

        // An admin of acme: its tenant in the header, no picker, acme's
        // events only; a link naming another tenant is refused in words.
        SignIn(&b).sign_in(&acme_admin).await;
        assert_eq!(Header(&b).who().await, "boss (admin) · tenant acme");
        events
            .until("acme's events", async |e| {
                e.rows().await.iter().filter(|r| r.ty == "commit").count() == 3
            })
            .await;
        // Besides its commits, only acme's own: its key's addition.
        for r in events.rows().await {
            assert!(
                r.description.starts_with("acme ") || r.description.contains("admin key of boss"),
                "{r:?}"
            );
        }
        assert!(
            !b.exists("//label[normalize-space(.)='Tenant']").await,
            "no tenant picker"
        );
        b.goto("/?tenant=globex").await;
        b.wait("the refusal", || async { events.problem().await })
            .await;
        let problem = events.problem().await.unwrap();
        assert!(
            problem.contains("reads only its tenant's events") && problem.contains("403"),
            "{problem}"
        );
        b.assert_no_errors(&["403 (Forbidden)"]).await;
        b.quit().await;
    });
}
