//! The API reference page (`/api/v1/docs`) in a real Chromium against a real
//! `callscope serve`: under the server's strict Content-Security-Policy its script and style
//! load, it renders the operations of the server's own OpenAPI document grouped by tag, and
//! the filter narrows them. A screenshot is kept under the target directory's
//! `softphone-artifacts/api_docs/`.
//!
//! Needs Chromium and tests/browser/node_modules (`scripts/setup` installs both); without
//! them the test fails, saying so.

use std::path::Path;

use callscope_testkit::browser::Softphones;
use callscope_testkit::callscope::Callscope;

const READER: &str = "reader";

#[test]
fn the_reference_page_renders_the_document_and_filters_it() {
    let artifacts = callscope_testkit::browser::artifact_dir(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "api_docs",
    )
    .expect("the artifact dir");
    let server = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .start()
        .expect("start callscope");
    let mut browser =
        Softphones::start().unwrap_or_else(|e| panic!("cannot start the browser driver: {e}"));
    let fail = |what: &str, e: &dyn std::fmt::Display, browser: &Softphones| -> ! {
        panic!(
            "{what}: {e}\n--- driver log ---\n{}\n--- server log ---\n{}",
            browser.log_text(),
            server.log()
        )
    };

    browser
        .open_page(READER, &server.base_url(), "/api/v1/docs")
        .unwrap_or_else(|e| fail("open", &e, &browser));
    // The script ran (CSP allowed it) and fetched the document: operations of several tags.
    for (selector, text) in [
        ("#operations", "/api/v1/calls/{id}"),
        ("#operations", "/api/v1/contacts/{id}/timeline"),
        ("#operations", "/api/v1/webhooks/whatsapp"),
        ("#tags", "calls"),
        ("#version", "v"),
    ] {
        browser
            .wait_text(READER, selector, text)
            .unwrap_or_else(|e| fail(&format!("{selector} showing {text}"), &e, &browser));
    }
    browser
        .wait_state(READER, "#get_call", "visible")
        .unwrap_or_else(|e| fail("the call operation", &e, &browser));
    let shot = artifacts.join("reference.png");
    browser
        .screenshot(READER, &shot)
        .unwrap_or_else(|e| fail("screenshot", &e, &browser));
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000);

    // Typing in the filter hides what does not match and keeps what does.
    for key in ["a", "u", "d", "i", "t"] {
        browser
            .press(READER, key, Some("#filter"))
            .unwrap_or_else(|e| fail("typing in the filter", &e, &browser));
    }
    browser
        .wait_state(READER, "#get_call", "hidden")
        .unwrap_or_else(|e| fail("the filter hiding the call operation", &e, &browser));
    browser
        .wait_text(READER, "#operations", "/api/v1/audit-log")
        .unwrap_or_else(|e| fail("the filter keeping the audit log", &e, &browser));

    // Expanding an operation shows its parameters.
    browser
        .click(READER, "details.op:has-text('/api/v1/audit-log') > summary")
        .unwrap_or_else(|e| fail("expanding the audit log operation", &e, &browser));
    browser
        .wait_text(
            READER,
            "details.op:has-text('/api/v1/audit-log')",
            "target_type",
        )
        .unwrap_or_else(|e| fail("the audit log's parameters", &e, &browser));
    browser
        .screenshot(READER, &artifacts.join("filtered.png"))
        .unwrap_or_else(|e| fail("screenshot", &e, &browser));
}
