//! `/v1/pbx/extensions`: shapes, rules, partial updates and bad input.

use crate::common::{Backend, TestApp, pg_rows, send};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    create_returns_201_with_sip_credentials_and_stores_only_digests,
    create_applies_defaults_and_optional_fields,
    invalid_fields_return_422_naming_the_field_and_change_nothing,
    duplicate_number_returns_409_and_the_same_number_works_in_another_pbx,
    patch_changes_only_the_fields_sent_and_null_clears,
    presence_patch_sets_dnd_and_filters_and_stats_follow,
    delete_returns_204_and_then_404,
    sip_credential_rotation_returns_a_new_password_once,
    list_is_ordered_by_number_and_filters_by_type,
    malformed_requests_get_precise_errors,
    names_that_spoof_or_show_nothing_return_422_over_rest_and_graphql,
    caller_id_numbers_may_be_e164_or_national,
    whole_numbers_written_with_a_fraction_are_integers,
    conference_parking_and_paging_extensions_get_no_sip_credentials,
);

async fn extension_count(app: &TestApp) -> usize {
    let (_, body) = app.get("/v1/pbx/extensions").await;
    body["extensions"].as_array().unwrap().len()
}

async fn create_returns_201_with_sip_credentials_and_stores_only_digests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "101", "name": "Alice"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ext = &body["extension"];
    assert!(ext["id"].as_str().unwrap().starts_with("ext_"));
    let creds = &ext["sipCredentials"];
    let username = creds["username"].as_str().unwrap();
    let (num, suffix) = username.split_once('_').unwrap();
    assert_eq!(num, "101");
    assert_eq!(suffix.len(), 6);
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let password = creds["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 20);
    assert_eq!(creds["domain"], "127.0.0.1");

    // Shown once: never in a later read.
    let (_, again) = app
        .get(&format!(
            "/v1/pbx/extensions/{}",
            ext["id"].as_str().unwrap()
        ))
        .await;
    assert!(again["extension"].get("sipCredentials").is_none());
    assert!(!again.to_string().contains(&password));

    // Stored only as HA1 digests: the password appears nowhere in the database.
    match backend {
        Backend::Sqlite => {
            let db = std::fs::read(app.data_dir.join("switchboard.db")).unwrap();
            let wal = std::fs::read(app.data_dir.join("switchboard.db-wal")).unwrap_or_default();
            for bytes in [db, wal] {
                assert!(
                    !bytes
                        .windows(password.len())
                        .any(|w| w == password.as_bytes())
                );
            }
            assert!(!app.server_log().contains(&password));
        }
        Backend::Postgres => {
            let rows = pg_rows(
                app.database_url.as_deref().unwrap(),
                "SELECT * FROM extension",
            )
            .await;
            assert_eq!(rows.len(), 1);
            for col in rows[0].iter().flatten() {
                assert!(!col.contains(&password), "password stored in a column");
            }
            let ha1 = pg_rows(
                app.database_url.as_deref().unwrap(),
                "SELECT ha1_md5, ha1_sha256 FROM extension",
            )
            .await;
            assert_eq!(ha1[0][0].as_ref().unwrap().len(), 32);
            assert_eq!(ha1[0][1].as_ref().unwrap().len(), 64);
        }
    }
}

async fn create_applies_defaults_and_optional_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ext = app.create_extension("102", "Bob").await;
    assert_eq!(ext["type"], "user");
    assert_eq!(ext["status"], "offline");
    assert_eq!(ext["voicemailEnabled"], true);
    assert_eq!(ext["forwardingRingTimeout"], 20);
    assert_eq!(ext["forwardingEnabled"], false);
    assert_eq!(ext["forwardingNumber"], Value::Null);
    assert_eq!(ext["registeredDevices"], 0);
    assert!(ext["createdAt"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = ext
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "number",
            "name",
            "type",
            "status",
            "callerIdName",
            "callerIdNumber",
            "voicemailEnabled",
            "forwardingNumber",
            "forwardingEnabled",
            "forwardingRingTimeout",
            "registeredDevices",
            "conferencePinSet",
            "maxParticipants",
            "createdAt",
            "updatedAt",
            "sipCredentials"
        ]
    );
    assert_eq!(
        (&ext["conferencePinSet"], &ext["maxParticipants"]),
        (&Value::Null, &Value::Null),
        "conference settings are null on a user extension"
    );

    let (status, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({
                "number": "7001", "name": "  Board room  ", "type": "conference",
                "callerIdName": "Acme Sales", "callerIdNumber": "5551234567",
                "voicemailEnabled": false, "forwardingNumber": "+442071234567",
                "forwardingRingTimeout": 45
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e = &body["extension"];
    assert_eq!(e["name"], "Board room");
    assert_eq!(e["type"], "conference");
    assert_eq!(e["callerIdName"], "Acme Sales");
    assert_eq!(e["callerIdNumber"], "5551234567");
    assert_eq!(e["voicemailEnabled"], false);
    assert_eq!(e["forwardingNumber"], "+442071234567");
    assert_eq!(e["forwardingEnabled"], true);
    assert_eq!(e["forwardingRingTimeout"], 45);
}

async fn invalid_fields_return_422_naming_the_field_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_extension("101", "Alice").await;
    let cases = [
        (json!({"number": "1a1", "name": "X"}), "number"),
        (json!({"number": "1", "name": "X"}), "number"),
        (json!({"number": "123456", "name": "X"}), "number"),
        (json!({"number": 150, "name": "X"}), "number"),
        (json!({"name": "X"}), "number"),
        (json!({"number": "150"}), "name"),
        (json!({"number": "150", "name": ""}), "name"),
        (json!({"number": "150", "name": "x".repeat(65)}), "name"),
        (json!({"number": "150", "name": "Tab\there"}), "name"),
        (
            json!({"number": "150", "name": "X", "type": "queue"}),
            "type",
        ),
        (
            json!({"number": "150", "name": "X", "callerIdNumber": "555-123-4567"}),
            "callerIdNumber",
        ),
        (
            json!({"number": "150", "name": "X", "forwardingRingTimeout": 4}),
            "forwardingRingTimeout",
        ),
        (
            json!({"number": "150", "name": "X", "forwardingRingTimeout": 61}),
            "forwardingRingTimeout",
        ),
        (
            json!({"number": "150", "name": "X", "forwardingNumber": "12ab"}),
            "forwardingNumber",
        ),
        (
            json!({"number": "150", "name": "X", "forwardingNumber": "150"}),
            "forwardingNumber",
        ),
        (
            json!({"number": "150", "name": "X", "voicemailEnabled": "yes"}),
            "voicemailEnabled",
        ),
        (
            json!({"number": "150", "name": "X", "status": "busy"}),
            "status",
        ),
        (
            json!({"number": "150", "name": "X", "colour": "red"}),
            "body",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/v1/pbx/extensions", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"], "validation_error", "{body}");
        assert_eq!(err["field"], field, "{body} → {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        extension_count(&app).await,
        1,
        "rejected creates stored nothing"
    );

    // A rejected update leaves the extension exactly as it was.
    let (_, before) = app.get("/v1/pbx/extensions").await;
    let id = before["extensions"][0]["id"].as_str().unwrap().to_owned();
    for (body, field) in [
        (
            json!({"name": "Ann", "callerIdNumber": "12"}),
            "callerIdNumber",
        ),
        (json!({"forwardingNumber": "101"}), "forwardingNumber"),
        (json!({"name": null}), "name"),
        (json!({"id": "ext_x"}), "id"),
    ] {
        let (status, err) = app
            .patch(&format!("/v1/pbx/extensions/{id}"), body.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["field"], field);
    }
    let (_, after) = app.get("/v1/pbx/extensions").await;
    assert_eq!(before, after);
}

async fn duplicate_number_returns_409_and_the_same_number_works_in_another_pbx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_extension("101", "Alice").await;
    let (status, err) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "101", "name": "Again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "conflict");
    assert_eq!(err["field"], "number");
    assert_eq!(extension_count(&app).await, 1);

    let other = app.create_extension("102", "Bob").await;
    let (status, err) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", other["id"].as_str().unwrap()),
            json!({"number": "101"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");

    let (_, key) = app.tenant("Acme");
    let (status, _) = send(
        app.request_as(&key, Method::POST, "/v1/pbx/extensions")
            .json(&json!({"number": "101", "name": "Acme Alice"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn patch_changes_only_the_fields_sent_and_null_clears(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "101", "name": "Alice", "callerIdName": "Alice A", "forwardingNumber": "102", "forwardingRingTimeout": 30}),
        )
        .await;
    let id = body["extension"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/pbx/extensions/{id}");

    let (status, body) = app.patch(&path, json!({"name": "Alice Smith"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let e = &body["extension"];
    assert_eq!(e["name"], "Alice Smith");
    assert_eq!(e["callerIdName"], "Alice A");
    assert_eq!(e["forwardingNumber"], "102");
    assert_eq!(e["forwardingRingTimeout"], 30);
    assert!(e.get("sipCredentials").is_none());

    let (_, body) = app
        .patch(
            &path,
            json!({"forwardingNumber": null, "callerIdName": null}),
        )
        .await;
    let e = &body["extension"];
    assert_eq!(e["forwardingNumber"], Value::Null);
    assert_eq!(e["forwardingEnabled"], false);
    assert_eq!(e["callerIdName"], Value::Null);
    assert_eq!(e["name"], "Alice Smith");
    assert_eq!(e["forwardingRingTimeout"], 30);

    let (_, body) = app.patch(&path, json!({})).await;
    assert_eq!(body["extension"]["name"], "Alice Smith");
    let (_, fetched) = app.get(&path).await;
    assert_eq!(fetched["extension"]["forwardingNumber"], Value::Null);
    assert!(
        fetched["extension"]["updatedAt"].as_str() >= fetched["extension"]["createdAt"].as_str()
    );
}

async fn presence_patch_sets_dnd_and_filters_and_stats_follow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_extension("101", "Alice").await;
    app.create_extension("102", "Bob").await;
    let path = format!("/v1/pbx/extensions/{}", a["id"].as_str().unwrap());
    let (status, body) = app.patch(&path, json!({"presence": "dnd"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["extension"]["status"], "dnd");

    let (_, list) = app.get("/v1/pbx/extensions?status=dnd").await;
    let numbers: Vec<&str> = list["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["101"]);

    let (_, stats) = app.get("/v1/pbx/extensions/stats").await;
    assert_eq!(
        stats,
        json!({"stats": {
            "total": 2,
            "byType": {"user": 2, "conference": 0, "parking": 0, "paging": 0},
            "byStatus": {"available": 0, "busy": 0, "away": 0, "dnd": 1, "offline": 1},
            "registeredDevices": 0
        }})
    );

    // Away without a device is still offline (no phone can ring); available clears it.
    let (_, body) = app.patch(&path, json!({"presence": "away"})).await;
    assert_eq!(body["extension"]["status"], "offline");
    let (_, body) = app.patch(&path, json!({"presence": "available"})).await;
    assert_eq!(body["extension"]["status"], "offline");
    let (status, err) = app.patch(&path, json!({"presence": "busy"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "presence");

    let (status, err) = app.get("/v1/pbx/extensions?status=sleeping").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "status");
}

async fn delete_returns_204_and_then_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_extension("101", "Alice").await;
    let path = format!("/v1/pbx/extensions/{}", a["id"].as_str().unwrap());
    let (status, body) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, err) = app.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err,
        json!({"error": "not_found", "message": "Extension not found"})
    );
    let (status, _) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The number is free again.
    app.create_extension("101", "Alice again").await;
}

async fn sip_credential_rotation_returns_a_new_password_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_extension("101", "Alice").await;
    let id = a["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/v1/pbx/extensions/{id}/sip-credentials"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let creds = &body["extension"]["sipCredentials"];
    assert_eq!(creds["username"], a["sipCredentials"]["username"]);
    assert_ne!(creds["password"], a["sipCredentials"]["password"]);
    assert!(creds["password"].as_str().unwrap().len() >= 20);
    let (status, _) = app
        .post("/v1/pbx/extensions/ext_nope/sip-credentials", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn list_is_ordered_by_number_and_filters_by_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (n, t) in [
        ("300", "paging"),
        ("101", "user"),
        ("2000", "parking"),
        ("102", "user"),
    ] {
        let (status, _) = app
            .post(
                "/v1/pbx/extensions",
                json!({"number": n, "name": n, "type": t}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, list) = app.get("/v1/pbx/extensions").await;
    let numbers: Vec<&str> = list["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["101", "102", "2000", "300"]);
    let (_, list) = app.get("/v1/pbx/extensions?type=user").await;
    assert_eq!(list["extensions"].as_array().unwrap().len(), 2);
    let (status, err) = app.get("/v1/pbx/extensions?type=queue").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "type");
}

async fn malformed_requests_get_precise_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, err) = send(
        app.request(Method::POST, "/v1/pbx/extensions")
            .header("content-type", "application/json")
            .body("{\"number\": \"101\", "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "bad_request");

    let (status, err) = send(
        app.request(Method::POST, "/v1/pbx/extensions")
            .json(&json!([1, 2])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    let big = json!({"number": "101", "name": "x".repeat(70 * 1024)});
    let (status, err) = send(app.request(Method::POST, "/v1/pbx/extensions").json(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["error"], "payload_too_large");

    let (status, err) = send(
        app.request(Method::POST, "/v1/pbx/extensions")
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{err}");

    let resp = app
        .request(Method::PUT, "/v1/pbx/extensions")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp
        .headers()
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "method_not_allowed");

    let (status, err) = app.get("/v1/pbx/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "not_found");
    let (status, _) = app
        .patch("/v1/pbx/extensions/ext_missing", json!({"name": "X"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(extension_count(&app).await, 0);
}

async fn names_that_spoof_or_show_nothing_return_422_over_rest_and_graphql(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_extension("101", "Alice").await;
    let alice_path = format!("/v1/pbx/extensions/{}", alice["id"].as_str().unwrap());
    let bad = [
        ("\u{202E}ecilA", "bidirectional"),
        ("Al\u{2066}ice\u{2069}", "bidirectional"),
        ("\u{200F}Alice", "bidirectional"),
        ("\u{200B}\u{200B}\u{200D}", "visible"),
        ("\u{FEFF}", "visible"),
        ("Alice\u{2028}Smith", "separators"),
        ("Alice\u{2029}", "separators"),
        ("Alice\n", "control"),
    ];
    for field in ["name", "callerIdName"] {
        for (value, why) in bad {
            let mut body = json!({"number": "150", "name": "X"});
            body[field] = json!(value);
            let (status, err) = app.post("/v1/pbx/extensions", body).await;
            assert_eq!(
                (status, err["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{field} {value:?}: {err}"
            );
            assert!(err["message"].as_str().unwrap().contains(why), "{err}");
            let mut patch = json!({});
            patch[field] = json!(value);
            let (status, err) = app.patch(&alice_path, patch).await;
            assert_eq!(
                (status, err["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{field} {value:?}: {err}"
            );
        }
    }
    assert_eq!(extension_count(&app).await, 1, "nothing was created");
    let (_, unchanged) = app.get(&alice_path).await;
    assert_eq!(unchanged["extension"]["name"], "Alice");
    assert_eq!(unchanged["extension"]["callerIdName"], Value::Null);

    // The same rule through GraphQL, with the same code and field.
    for (input, field) in [
        (json!({"number": "151", "name": "\u{202E}ecilA"}), "name"),
        (
            json!({"number": "151", "name": "Ann", "callerIdName": "\u{200B}"}),
            "callerIdName",
        ),
    ] {
        let out = app
            .graphql(
                "mutation($in: CreateExtensionInput!) { createExtension(input: $in) { extension { id } } }",
                json!({"in": input}),
            )
            .await;
        let ext = &out["errors"][0]["extensions"];
        assert_eq!(
            (ext["code"].as_str(), ext["field"].as_str()),
            (Some("validation_error"), Some(field)),
            "{out}"
        );
    }

    // Names in any script, with joiners and emoji sequences, are fine.
    for name in ["محمد", "👩\u{200D}💻 Help desk", "  Zoë  "] {
        let (status, body) = app.patch(&alice_path, json!({"name": name})).await;
        assert_eq!(status, StatusCode::OK, "{name:?}: {body}");
        assert_eq!(body["extension"]["name"], name.trim());
    }
}

async fn caller_id_numbers_may_be_e164_or_national(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "101", "name": "A", "callerIdNumber": "+442071234567"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["extension"]["callerIdNumber"], "+442071234567");
    let path = format!(
        "/v1/pbx/extensions/{}",
        body["extension"]["id"].as_str().unwrap()
    );
    for ok in [
        "5551234567",
        "02071234567",
        "+15551234567",
        "112",
        "123456789012345",
    ] {
        let (status, body) = app.patch(&path, json!({"callerIdNumber": ok})).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
        assert_eq!(body["extension"]["callerIdNumber"], ok);
    }
    for bad in [
        "12",
        "+",
        "+0441234567",
        "+1234567890123456",
        "1234567890123456",
        "555-123-4567",
        "+1 555 1234567",
    ] {
        let (status, err) = app.patch(&path, json!({"callerIdNumber": bad})).await;
        assert_eq!(
            (status, err["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("callerIdNumber")),
            "{bad}: {err}"
        );
    }
    let out = app
        .graphql(
            "mutation($id: ID!) { updateExtension(id: $id, input: {callerIdNumber: \"+4930123456\"}) { callerIdNumber } }",
            json!({"id": path.rsplit('/').next().unwrap()}),
        )
        .await;
    assert_eq!(
        out["data"]["updateExtension"]["callerIdNumber"], "+4930123456",
        "{out}"
    );
}

async fn whole_numbers_written_with_a_fraction_are_integers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Sent as raw text: `30.0` must reach the server as written.
    let raw = |method: Method, path: &str, body: &'static str| {
        send(
            app.request(method, path)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let (status, body) = raw(
        Method::POST,
        "/v1/pbx/extensions",
        r#"{"number": "101", "name": "A", "forwardingRingTimeout": 30.0}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["extension"]["forwardingRingTimeout"], 30);
    let path = format!(
        "/v1/pbx/extensions/{}",
        body["extension"]["id"].as_str().unwrap()
    );
    let (status, body) = raw(Method::PATCH, &path, r#"{"forwardingRingTimeout": 4.5e1}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["extension"]["forwardingRingTimeout"], 45);
    for bad in [
        r#"{"forwardingRingTimeout": 30.5}"#,
        r#"{"forwardingRingTimeout": "30"}"#,
        r#"{"forwardingRingTimeout": 60.0001}"#,
        r#"{"forwardingRingTimeout": 61.0}"#,
    ] {
        let (status, err) = raw(Method::PATCH, &path, bad).await;
        assert_eq!(
            (status, err["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("forwardingRingTimeout")
            ),
            "{bad}: {err}"
        );
    }

    // Mailbox settings too.
    let (status, body) = raw(
        Method::PATCH,
        "/v1/pbx/voicemail/mailboxes/vm_101",
        r#"{"retentionDays": 30.0, "maxMessageSeconds": 6E1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            &body["mailbox"]["retentionDays"],
            &body["mailbox"]["maxMessageSeconds"]
        ),
        (&json!(30), &json!(60))
    );
    for (bad, field) in [
        (r#"{"retentionDays": 30.5}"#, "retentionDays"),
        (r#"{"maxMessageSeconds": 59.9}"#, "maxMessageSeconds"),
    ] {
        let (status, err) = raw(Method::PATCH, "/v1/pbx/voicemail/mailboxes/vm_101", bad).await;
        assert_eq!(
            (status, err["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{bad}: {err}"
        );
    }
}

async fn conference_parking_and_paging_extensions_get_no_sip_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/v1/pbx/extensions",
            json!({"number": "800", "name": "Board room", "type": "conference"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ext = &body["extension"];
    assert!(ext.get("sipCredentials").is_none(), "{body}");
    assert_eq!(ext["registeredDevices"], 0);
    let id = ext["id"].as_str().unwrap().to_owned();

    // Rotating what does not exist is a conflict with the extension's type.
    let (status, err) = app
        .post(
            &format!("/v1/pbx/extensions/{id}/sip-credentials"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(
        (err["error"].as_str(), err["field"].as_str()),
        (Some("conflict"), Some("type"))
    );
    assert!(
        err["message"].as_str().unwrap().contains("conference"),
        "{err}"
    );

    // GraphQL: no credentials for parking or paging either; rotation is the same conflict.
    for (number, kind) in [("801", "PARKING"), ("802", "PAGING")] {
        let out = app
            .graphql(
                "mutation($in: CreateExtensionInput!) { createExtension(input: $in) { extension { id type } sipCredentials { username password } } }",
                json!({"in": {"number": number, "name": "Lot", "type": kind}}),
            )
            .await;
        let payload = &out["data"]["createExtension"];
        assert_eq!(payload["extension"]["type"], kind, "{out}");
        assert_eq!(payload["sipCredentials"], Value::Null, "{out}");
        let out = app
            .graphql(
                "mutation($id: ID!) { resetSipCredentials(id: $id) { sipCredentials { password } } }",
                json!({"id": payload["extension"]["id"]}),
            )
            .await;
        let ext = &out["errors"][0]["extensions"];
        assert_eq!(
            (ext["code"].as_str(), ext["field"].as_str()),
            (Some("conflict"), Some("type")),
            "{out}"
        );
    }

    // A user extension still gets its credentials, once.
    let user = app.create_extension("101", "Alice").await;
    assert!(user["sipCredentials"]["password"].is_string());
}
