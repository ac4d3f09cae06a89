//! The OpenAPI document against the server it describes (issue 7):
//! - `/api/v1/openapi.json` is served without a credential and is valid OpenAPI 3.1, as
//!   judged by an independent validator (`openapi-spec-validator` from PyPI, which
//!   `scripts/setup` installs into the venv);
//! - every documented operation is routed: an anonymous request to it reaches the route
//!   (never "no such route" or "method not allowed"), and every operation that declares a
//!   credential refuses the anonymous request with 401;
//! - every route is documented: the server's sources register routes only through
//!   `utoipa_axum::routes!`, which takes the path and method from the handler's annotation.
//!   A `.route(...)` or a plain axum `Router` merged in would bypass the document, so the
//!   sources are searched for those.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestServer;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

async fn served_document(server: &TestServer) -> Value {
    let response = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the document needs no credential");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// (method, path, needs a credential) for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let security = op["security"]
                .as_array()
                .expect("every operation states its security");
            let public = security
                .iter()
                .any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            out.push((method.to_string(), path.clone(), !public));
        }
    }
    out
}

/// A concrete URL path for a templated one (`{id}` and friends get a plausible value).
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .expect("closed parameter");
        let name = &rest[open + 1..close];
        out.push_str(match name {
            "file" => "transcript.json",
            _ => "probe-0000",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let server = TestServer::start(|_| {}).await;
    let doc = served_document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let ops = operations(&doc);
    // Every operation is reachable from the browsable reference, which groups by tag.
    for (method, path, _) in &ops {
        let tags = &doc["paths"][path][method]["tags"];
        assert!(
            tags.as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has no tag"
        );
    }

    let file = server.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let script = "import sys\n\
        from openapi_spec_validator import validate\n\
        from openapi_spec_validator.readers import read_from_filename\n\
        spec, _ = read_from_filename(sys.argv[1])\n\
        validate(spec)\n\
        print('valid', spec['openapi'])\n";
    let output = Command::new(callscope_inference::venv_python())
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("the venv's python (scripts/setup creates it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "valid 3.1.0",
        "openapi-spec-validator refused the document:\n{stdout}\n{stderr}"
    );
    assert!(ops.len() > 100, "only {} operations documented", ops.len());

    // Typed answers name their schema, and the schema is in the document.
    let team = &doc["paths"]["/api/v1/teams/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(team["$ref"], "#/components/schemas/TeamView", "{team}");
    let team_schema = &doc["components"]["schemas"]["TeamView"];
    for field in ["id", "name", "member_count", "members", "created_at"] {
        assert!(
            team_schema["properties"].get(field).is_some(),
            "TeamView lacks {field}: {team_schema}"
        );
    }
    let list = &doc["paths"]["/api/v1/teams"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert!(list.to_string().contains("TeamView"), "{list}");

    // The CRM's answers are typed the same way: one item, and the cursor page of a list.
    for (path, view, fields) in [
        (
            "/api/v1/conversations/{id}",
            "ConversationView",
            &["id", "status", "team_id", "labels", "last_activity_at"][..],
        ),
        (
            "/api/v1/contacts/{id}",
            "ContactView",
            &["id", "phones", "emails", "consent", "attributes"][..],
        ),
        (
            "/api/v1/tasks/{id}",
            "TaskView",
            &["id", "title", "due_at", "done", "source"][..],
        ),
        (
            "/api/v1/notes/{id}",
            "NoteView",
            &["id", "body", "author", "created_at"][..],
        ),
    ] {
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(
            schema["$ref"],
            format!("#/components/schemas/{view}"),
            "{path}: {schema}"
        );
        let properties = &doc["components"]["schemas"][view]["properties"];
        for field in fields {
            assert!(
                properties.get(field).is_some(),
                "{view} lacks {field}: {properties}"
            );
        }
    }
    for (path, view) in [
        ("/api/v1/conversations", "ConversationView"),
        ("/api/v1/conversations/{id}/messages", "MessageView"),
        ("/api/v1/contacts", "ContactView"),
        ("/api/v1/tasks", "TaskView"),
        ("/api/v1/notes", "NoteView"),
    ] {
        let page =
            doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                .to_string();
        assert!(
            page.contains(view) && page.contains("CursorPage"),
            "{path}: {page}"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_guarded() {
    let server = TestServer::start(|_| {}).await;
    let doc = served_document(&server).await;
    let mut failures = Vec::new();
    for (method, path, needs_credential) in operations(&doc) {
        let url = server.url(&concrete(&path));
        let request = server
            .http
            .request(method.to_uppercase().parse().unwrap(), &url)
            .header("content-type", "application/json")
            .body("{}");
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 405 || body["code"] == "route_not_found" {
            failures.push(format!("{method} {path}: not routed ({status})"));
        } else if needs_credential && status != 401 {
            failures.push(format!(
                "{method} {path}: answered {status} without a credential: {body}"
            ));
        }
    }
    // And nothing more is routed on a documented path: handlers of different paths given to
    // one `routes!` would serve each other's methods on both paths.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let url = server.url(&concrete(path));
            let response = server
                .http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            if response.status() != 405 {
                failures.push(format!(
                    "{method} {path}: undocumented, yet answered {}",
                    response.status()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The control: the probe does tell a missing route apart.
    let response = server
        .http
        .get(server.url("/api/v1/no-such-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn routes_are_registered_only_through_documented_handlers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    // Ways to add a route that `routes!` does not document.
    let bypasses = [
        ".route(",
        ".route_service(",
        ".nest_service(",
        "OpenApiRouter::from(",
        "Router::new()",
        "axum::routing::",
    ];
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may stand up throwaway servers (a model file server, for instance).
        let served = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in served.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            // `OpenApiRouter::new()` is the documented router; only a bare axum one counts.
            let line_without_ours = line.replace("OpenApiRouter::new()", "");
            if let Some(b) = bypasses.iter().find(|b| line_without_ours.contains(*b)) {
                found.push(format!(
                    "{}:{}: `{b}`: {}",
                    file.strip_prefix(&src).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes registered around the OpenAPI document:\n{}",
        found.join("\n")
    );
}
