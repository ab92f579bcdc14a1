//! Page objects, one per view of the console: what a person sees and does,
//! found by labels and visible text (so a change of markup keeps them true).

use fantoccini::Locator;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use serde::Deserialize;
use serde_json::{Value, json};

use super::browser::{Browser, lit, press};

/// The sign-in form.
pub struct SignIn<'a>(pub &'a Browser);

impl SignIn<'_> {
    /// Waits for the form (heading "Sign in").
    pub async fn wait(&self) {
        self.0.xpath("//h1[normalize-space(.)='Sign in']").await;
    }

    /// Enters `key` and presses "Sign in".
    pub async fn sign_in(&self, key: &str) {
        self.wait().await;
        let field = self.0.control("API key").await;
        field.clear().await.unwrap();
        field.send_keys(key).await.unwrap();
        self.0.button("Sign in").await.click().await.unwrap();
    }

    /// The message under the form (empty when there is none).
    pub async fn message(&self) -> String {
        self.0
            .text_of("//form[.//h1[normalize-space(.)='Sign in']]//*[@role='alert']")
            .await
            .unwrap_or_default()
    }
}

/// The header: who is signed in, the views, Sign out.
pub struct Header<'a>(pub &'a Browser);

impl Header<'_> {
    /// "alice (user) · default tenant" once signed in.
    pub async fn who(&self) -> String {
        let b = self.0;
        b.wait("the signed-in user in the header", || async {
            let t: String = b
                .js(
                    "const e = document.querySelector('header .who'); return e ? e.textContent : ''",
                    vec![],
                )
                .await;
            (!t.is_empty()).then_some(t)
        })
        .await
    }

    /// The names of the views offered.
    pub async fn views(&self) -> Vec<String> {
        let nav = self.0.xpath("//nav[@aria-label='Views']").await;
        let mut out = Vec::new();
        for a in nav.find_all(Locator::XPath(".//a")).await.unwrap() {
            out.push(a.text().await.unwrap());
        }
        out
    }

    /// Goes to a view by its link.
    pub async fn open(&self, view: &str) {
        self.0
            .xpath(&format!(
                "//nav[@aria-label='Views']//a[normalize-space(.)={}]",
                lit(view)
            ))
            .await
            .click()
            .await
            .unwrap();
    }

    pub async fn sign_out(&self) {
        self.0.button("Sign out").await.click().await.unwrap();
    }
}

/// One row of the events table, as shown.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: String,
    pub time: String,
    pub utc: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub user: String,
    pub status: String,
    pub level: String,
    pub description: String,
    /// "Resolved" or "Open" (the badge, without the admin's button); empty
    /// for a resolution event (which has no state).
    pub state: String,
}

/// The events view.
pub struct Events<'a>(pub &'a Browser);

/// The events table, by its caption.
const TABLE: &str = "//table[caption[starts-with(normalize-space(.), 'Events')]]";
/// The pager, by its label.
const PAGER: &str = "//nav[@aria-label='Pages']";

impl Events<'_> {
    /// Waits until no load is in flight (the results are not busy).
    pub async fn settled(&self) {
        let b = self.0;
        b.xpath("//*[@aria-busy='false']").await;
        b.wait("the events to load", || async {
            let busy = b.exists("//*[@aria-busy='true']").await;
            (!busy).then_some(())
        })
        .await;
    }

    /// Waits until `check(self)` holds after a change (the load it caused done).
    pub async fn until(&self, what: &str, check: impl AsyncFn(&Self) -> bool) {
        let b = self.0;
        b.wait(what, || async {
            let busy = b.exists("//*[@aria-busy='true']").await;
            (!busy && check(self).await).then_some(())
        })
        .await;
    }

    /// The rows shown, top to bottom.
    pub async fn rows(&self) -> Vec<Row> {
        let table = self.0.xpath(TABLE).await;
        let v: Value = self
            .0
            .js(
                r#"return [...arguments[0].tBodies[0].rows].map(r => ({
                    id: r.dataset.id, time: r.cells[0].textContent,
                    utc: r.cells[0].querySelector('time').getAttribute('title'),
                    type: r.cells[1].textContent, user: r.cells[2].textContent,
                    status: r.cells[3].textContent, level: r.cells[4].textContent,
                    description: r.cells[5].textContent,
                    state: r.cells[6].querySelector('.badge')?.textContent ?? '' }))"#,
                vec![serde_json::to_value(&table).unwrap()],
            )
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// The ids of the rows shown.
    pub async fn ids(&self) -> Vec<String> {
        self.rows().await.into_iter().map(|r| r.id).collect()
    }

    /// The pager's "Page X of Y", or None when it is not shown.
    pub async fn page_text(&self) -> Option<String> {
        let pager = self.0.xpath(PAGER).await;
        if !pager.is_displayed().await.unwrap() {
            return None;
        }
        let t = pager.text().await.unwrap();
        let at = t.find("Page ")?;
        let rest = &t[at..];
        let end = rest.find('\n').unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    }

    /// Waits until the pager reads `text` ("Page 2 of 2").
    pub async fn until_page(&self, text: &str) {
        self.until(text, async |e: &Self| {
            e.page_text().await.as_deref() == Some(text)
        })
        .await;
    }

    /// The pager's button `text` (`Previous`, `Next`) and whether it is enabled.
    pub async fn pager_button(&self, text: &str) -> (Element, bool) {
        let b = self
            .0
            .xpath(&format!(
                "{PAGER}//button[normalize-space(.)={}]",
                lit(text)
            ))
            .await;
        let enabled = b.is_enabled().await.unwrap();
        (b, enabled)
    }

    /// The pager's count of events ("3 events").
    pub async fn total(&self) -> Option<String> {
        self.0
            .text_of(&format!("{PAGER}//span[contains(., ' event')]"))
            .await
    }

    /// The buttons in the row of event `id`, by their text.
    pub async fn row_buttons(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        for b in self
            .0
            .all(&format!("{TABLE}//tr[@data-id={}]//button", lit(id)))
            .await
        {
            out.push(b.text().await.unwrap());
        }
        out
    }

    /// The button `text` in the row of event `id`.
    pub async fn row_button(&self, id: &str, text: &str) -> Element {
        self.0
            .xpath(&format!(
                "{TABLE}//tr[@data-id={}]//button[normalize-space(.)={}]",
                lit(id),
                lit(text)
            ))
            .await
    }

    /// Whether the message for no matches shows.
    pub async fn shows_no_matches(&self) -> bool {
        let found = self
            .0
            .all("//p[normalize-space(.)='No events match these filters']")
            .await;
        match found.first() {
            Some(p) => p.is_displayed().await.unwrap(),
            None => false,
        }
    }

    /// The error shown instead of results, if any.
    pub async fn problem(&self) -> Option<String> {
        let found = self
            .0
            .all("//section[@aria-label='Events']//*[@role='alert']")
            .await;
        for p in found {
            if p.is_displayed().await.unwrap() {
                return Some(p.text().await.unwrap());
            }
        }
        None
    }

    /// Ticks or unticks the event type `name` in the "Event types" list.
    pub async fn toggle_type(&self, name: &str) {
        let b = self.0;
        let summary = b
            .xpath("//summary[@aria-labelledby='types-label types-summary']")
            .await;
        let details = summary.find(Locator::XPath("..")).await.unwrap();
        if details.attr("open").await.unwrap().is_none() {
            summary.click().await.unwrap();
        }
        let label = b
            .xpath(&format!(
                "//*[@aria-label='Event types']//label[starts-with(normalize-space(.), {})]",
                lit(&format!("{name} ("))
            ))
            .await;
        label
            .find(Locator::XPath(".//input"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Focuses the row at `index` (as Tab and the arrow keys would).
    pub async fn focus_row(&self, index: usize) -> Element {
        let table = self.0.xpath(TABLE).await;
        self.0
            .js::<Value>(
                "arguments[0].tBodies[0].rows[arguments[1]].focus()",
                vec![serde_json::to_value(&table).unwrap(), json!(index)],
            )
            .await;
        self.0.focused().await
    }

    /// Focuses the row at `index` and presses `key` on it.
    pub async fn key_on_row(&self, index: usize, key: Key) {
        let row = self.focus_row(index).await;
        press(&row, key).await;
    }

    /// The id of the row that has the keyboard focus, if a row has it.
    pub async fn focused_row(&self) -> Option<String> {
        self.0
            .js(
                "const a = document.activeElement; return a && a.tagName === 'TR' ? a.dataset.id : null",
                vec![],
            )
            .await
    }
}

/// The details dialog.
pub struct Details<'a>(pub &'a Browser);

const DIALOG: &str = "//dialog[@open]";

impl Details<'_> {
    /// Waits until it shows event `id` (its Id field).
    pub async fn wait_for(&self, id: &str) {
        let b = self.0;
        b.wait("the details of the event", || async {
            (self.field("Id").await.as_deref() == Some(id)).then_some(())
        })
        .await;
    }

    /// The text of field `label` (None if the dialog is closed or lacks it).
    pub async fn field(&self, label: &str) -> Option<String> {
        self.0
            .text_of(&format!(
                "{DIALOG}//dt[normalize-space(.)={}]/following-sibling::dd[1]",
                lit(label)
            ))
            .await
    }

    /// The field labels, in order.
    pub async fn labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dt in self.0.all(&format!("{DIALOG}//dt")).await {
            out.push(dt.text().await.unwrap());
        }
        out
    }

    pub async fn is_open(&self) -> bool {
        self.0.exists(DIALOG).await
    }

    /// The dialog's button `text`, waiting for it.
    pub async fn button(&self, text: &str) -> Element {
        self.0
            .xpath(&format!(
                "{DIALOG}//button[normalize-space(.)={}]",
                lit(text)
            ))
            .await
    }

    /// Whether the dialog has a button `text` now.
    pub async fn has_button(&self, text: &str) -> bool {
        self.0
            .exists(&format!(
                "{DIALOG}//button[normalize-space(.)={}]",
                lit(text)
            ))
            .await
    }

    /// Presses Escape in the dialog.
    pub async fn escape(&self) {
        let d = self.0.xpath(DIALOG).await;
        let focused = self.0.focused().await;
        let target = if focused
            .find(Locator::XPath("ancestor::dialog"))
            .await
            .is_ok()
        {
            focused
        } else {
            d
        };
        press(&target, Key::Escape).await;
    }
}

/// The statistics view.
pub struct Stats<'a>(pub &'a Browser);

impl Stats<'_> {
    /// The value of card `label` (e.g. "Events"), once loaded.
    pub async fn card(&self, label: &str) -> String {
        let x = format!(
            "//section[@aria-label='Statistics']//div[div[normalize-space(.)={}]]/div[2]",
            lit(label)
        );
        let b = self.0;
        b.wait(&format!("the card {label}"), || async {
            if b.exists("//*[@aria-busy='true']").await {
                return None;
            }
            b.text_of(&x).await
        })
        .await
    }

    /// Clicks the bar `key` in chart `title` ("By status", …).
    pub async fn click_bar(&self, title: &str, key: &str) {
        let x = format!(
            "//section[h3[normalize-space(.)={}]]//a[span[normalize-space(.)={}]]",
            lit(title),
            lit(key)
        );
        self.0.xpath(&x).await.click().await.unwrap();
    }

    /// The bars of chart `title` as (label, count text).
    pub async fn bars(&self, title: &str) -> Vec<(String, String)> {
        let x = format!("//section[h3[normalize-space(.)={}]]//a", lit(title));
        let mut out = Vec::new();
        for a in self.0.all(&x).await {
            let spans = a.find_all(Locator::XPath(".//span")).await.unwrap();
            out.push((
                spans[0].text().await.unwrap(),
                spans[1].text().await.unwrap(),
            ));
        }
        out
    }
}

/// The admin panel.
pub struct Admin<'a>(pub &'a Browser);

impl Admin<'_> {
    /// The value of health fact `label`.
    pub async fn fact(&self, label: &str) -> String {
        let x = format!(
            "//section[@aria-label='Admin']//dt[normalize-space(.)={}]/following-sibling::dd[1]",
            lit(label)
        );
        let b = self.0;
        b.wait(&format!("the fact {label}"), || async {
            b.text_of(&x).await
        })
        .await
    }

    /// Presses `button` and waits for the report's summary starting with `prefix`.
    pub async fn rotate(&self, button: &str, prefix: &str) -> String {
        self.0.button(button).await.click().await.unwrap();
        self.said(prefix).await
    }

    /// Types `days` into the purge form's retention and presses Enter (a
    /// preview); waits for the answer starting with `prefix`.
    pub async fn preview_purge(&self, days: &str, prefix: &str) -> String {
        self.0.enter("Retention (days)", days).await;
        self.said(prefix).await
    }

    /// Waits for a paragraph of the panel starting with `prefix`.
    pub async fn said(&self, prefix: &str) -> String {
        let x = format!(
            "//section[@aria-label='Admin']//p[starts-with(normalize-space(.), {})]",
            lit(prefix)
        );
        let b = self.0;
        b.wait(&format!("the report {prefix}"), || async {
            b.text_of(&x).await
        })
        .await
    }
}
