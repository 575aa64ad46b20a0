//! Every error body is `{"error","message"}` JSON, whoever answers: our handlers, axum's
//! extractors, or hyper itself before any of our code runs. Real sockets throughout.

use crate::common::{Backend, TestApp, send};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts a JSON error body with `code` and a message; returns the message.
fn assert_json_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

/// Sends `request` as raw bytes over a fresh TCP connection and returns the status and
/// the body of the answer (read until the server closes or the body is complete).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (u16, String, Value) {
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Some(len) = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            && body.len() >= len.trim().parse::<usize>().unwrap()
        {
            break;
        }
    }
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, head.to_owned(), serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_gets_a_json_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path) in [
        (Method::GET, "/v1/pbx/extensions/%FF%FE"),
        (Method::DELETE, "/v1/pbx/extensions/ext_%C3"),
        (Method::GET, "/v1/pbx/voicemail/mailboxes/vm_%FF/messages"),
        (
            Method::GET,
            "/v1/pbx/voicemail/mailboxes/vm_101/messages/%FF/audio",
        ),
    ] {
        let (status, body) = send(app.request(method.clone(), path)).await;
        let message = assert_json_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        assert!(message.contains("UTF-8"), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn a_greeting_over_the_body_cap_gets_a_json_413() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_extension("101", "Alice").await;
    // The greeting cap (24 MiB, for two minutes of CD audio) plus one byte.
    let cap = 24 * 1024 * 1024;
    let (status, body) = send(
        app.request(Method::PUT, "/v1/pbx/voicemail/mailboxes/vm_101/greeting")
            .header("content-type", "audio/wav")
            .body(vec![0u8; cap + 1]),
    )
    .await;
    let message = assert_json_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(message.contains(&cap.to_string()), "{message}");

    // Any other body is capped at 64 KiB, with the same shape.
    let (status, body) = send(
        app.request(Method::PATCH, "/v1/pbx/voicemail/mailboxes/vm_101")
            .header("content-type", "application/json")
            .body(format!("{{\"pin\": \"{}\"}}", "1".repeat(70 * 1024))),
    )
    .await;
    let message = assert_json_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(message.contains("65536"), "{message}");
}

#[tokio::test]
async fn long_uris_get_a_json_414_whether_we_or_hyper_refuse_them() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Just under our limit: served.
    let fits = format!("/v1/pbx/extensions?pad={}", "a".repeat(8 * 1024 - 30));
    assert!(fits.len() <= 8 * 1024);
    let (status, body) = send(app.request(Method::GET, &fits)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Over our 8 KiB limit: our layer answers.
    for size in [8 * 1024, 20 * 1024] {
        let path = format!("/v1/pbx/extensions?pad={}", "a".repeat(size));
        let (status, body) = send(app.request(Method::GET, &path)).await;
        let message = assert_json_error(status, &body, StatusCode::URI_TOO_LONG, "uri_too_long");
        assert!(message.contains("8192"), "{size}: {message}");
    }
    // ~100 KB, over hyper's 65,534-byte limit: hyper answers, and the connection gives
    // its answer our body. (reqwest cannot send such a URI: the `http` crate refuses to
    // build it; a raw socket can.)
    for target in [
        format!("/v1/pbx/extensions/{}", "a".repeat(100 * 1024)),
        format!("/v1/pbx/extensions?pad={}", "a".repeat(100 * 1024)),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            app.key
        );
        let (status, head, body) = raw_exchange(&app, request.as_bytes()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (414, Some("uri_too_long")),
            "{head}"
        );
        assert!(body["message"].as_str().unwrap().contains("8192"), "{body}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.to_string().len());
    }

    // The server is none the worse.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_json_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let (status, head, body) = raw_exchange(&app, request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{}: {head}",
            String::from_utf8_lossy(request)
        );
        assert!(body["message"].is_string());
    }

    // Pipelined behind a good request: the good one is answered as usual, then the
    // bad one gets its JSON 400 and the connection closes.
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes within 5 s")
    .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (first, second) = answer
        .split_once("HTTP/1.1 400 Bad Request\r\n")
        .expect("a 400 after the first answer");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let body = second.split_once("\r\n\r\n").unwrap().1;
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "bad_request");
}

#[tokio::test]
async fn framework_rejections_are_json_too() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // A websocket endpoint asked for without an upgrade: axum's own rejection.
    for path in ["/sip", "/graphql/ws"] {
        let (status, body) = send(app.client.get(app.url(path))).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{path}: {body}"
        );
    }
    // 405 keeps its Allow header.
    let resp = app
        .request(Method::PUT, "/v1/pbx/extensions")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("allow").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}
