//! SIP over TLS and secure websockets, with a certificate authority and server
//! certificate the test makes itself: a TLS phone (baresip) registers and is called, a
//! browser phone registers over wss, and a GraphQL subscription runs over wss.

use crate::common::sip::{Sipp, authorization, free_port_pair, header, status, write_wav};
use crate::common::ws::{GqlWs, Incoming};
use crate::common::{Backend, TestApp, eventually};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`:
/// (CA certificate, server certificate, server key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Switchboard test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A server with a certificate, SIP over TLS and HTTPS on free ports.
async fn tls_app() -> (TestApp, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sb-tls-{}", crate::common::random_suffix()));
    let (ca, cert, key) = certificates(&dir);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--sip-tls",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
        ],
    )
    .await;
    (app, ca)
}

/// A client configuration that trusts only the test CA.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A baresip phone for `account` over TLS only, trusting the test CA, answering by
/// itself, with `wav` as its microphone.
fn baresip_over_tls(
    app: &TestApp,
    account: &crate::common::sip::Account,
    ca: &Path,
    wav: &Path,
) -> PathBuf {
    let dir = app.data_dir.join(format!("baresip-tls-{}", account.number));
    std::fs::create_dir_all(&dir).unwrap();
    let rtp = free_port_pair();
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nsip_cafile {}\naudio_player aubridge,nil\n\
             audio_source aufile,{}\naudio_alert aubridge,nil\nrtp_ports {rtp}-{}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module aubridge.so\nmodule_app account.so\nmodule_app contact.so\nmodule_app menu.so\n",
            free_port_pair(),
            ca.display(),
            wav.display(),
            rtp + 1
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{u}@127.0.0.1;transport=tls>;auth_user={u};auth_pass={p};outbound=\"sip:{s};transport=tls\";regint=600;answermode=auto;mwi=no;medianat=\n",
            u = account.username,
            p = account.password,
            s = app.sip_tls.as_deref().unwrap()
        ),
    )
    .unwrap();
    dir
}

/// A phone that registered over TLS is reached over its TLS connection: baresip
/// registers to the TLS port on the default flags plus a certificate, a SIPp caller over
/// UDP calls it, it answers, and the call is recorded as answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_phone_registers_and_is_called() {
    let (app, ca) = tls_app().await;
    let alice = app.account("101", "Alice").await;
    let bob = app.account("102", "Bob").await;
    let wav = app.data_dir.join("tone.wav");
    write_wav(&wav, &[(10.0, true)]);
    let phone = crate::common::sip::baresip(baresip_over_tls(&app, &bob, &ca, &wav), 12, None);
    let device = eventually(WAIT, || async {
        let (_, body) = app.get("/v1/pbx/phones").await;
        body["phones"]
            .as_array()
            .and_then(|p| p.iter().find(|d| d["registered"] == true).cloned())
    })
    .await;
    assert_eq!(device["transport"], "tls", "{device}");

    let run = Sipp::new(&app, "call.xml")
        .user(&alice, "101", &["102"])
        .auth_uri("102@127.0.0.1")
        .run()
        .await;
    run.assert_ok();
    // Double record-routing (RFC 5658): the UDP caller and the TLS callee each get an
    // entry of their own transport.
    assert!(
        run.messages.contains("transport=tls;lr"),
        "{}",
        run.messages
    );
    let out = phone.await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Call established") || text.contains("call: answered"),
        "{text}"
    );
    let (_, calls) = app.get("/v1/pbx/calls").await;
    assert_eq!(calls["calls"][0]["disposition"], "answered", "{calls}");
}

/// A browser phone registers over `wss://…/sip`; its binding is marked `wss`.
#[tokio::test]
async fn a_browser_phone_registers_over_secure_websocket() {
    let (app, ca) = tls_app().await;
    let web = app.account("120", "Web").await;
    let url = format!("wss://{}/sip", app.https.as_deref().unwrap());
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(client_config(&ca))),
    )
    .await
    .expect("wss upgrade");
    let register = |n: u32, extra: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK-wss-{n}\r\n\
             From: <sip:120@127.0.0.1>;tag=wss1\r\nTo: <sip:120@127.0.0.1>\r\nCall-ID: wss-call-1\r\n\
             CSeq: {n} REGISTER\r\nContact: <sip:k2k3@df7jal23ls0d.invalid;transport=wss>;expires=600\r\n\
             Max-Forwards: 70\r\nUser-Agent: JsSIP 3.10.0\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let mut exchange = async |msg: String| -> String {
        ws.send(Message::Text(msg.into())).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("websocket ended: {other:?}"),
            }
        }
    };
    let challenge = exchange(register(1, "")).await;
    assert_eq!(status(&challenge), 401);
    let auth = authorization(
        header(&challenge, "WWW-Authenticate").unwrap(),
        &web.username,
        &web.password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
    );
    let ok = exchange(register(2, &format!("Authorization: {auth}\r\n"))).await;
    assert_eq!(status(&ok), 200, "{ok}");
    let (_, body) = app.get("/v1/pbx/phones").await;
    assert_eq!(body["phones"][0]["transport"], "wss", "{body}");
}

/// A console subscribes over `wss://…/graphql/ws` and sees a presence change.
#[tokio::test]
async fn a_graphql_subscription_runs_over_secure_websocket() {
    let (app, ca) = tls_app().await;
    let kim = app.account("130", "Kim").await;
    let url = format!("wss://{}/graphql/ws", app.https.as_deref().unwrap());
    let mut ws = GqlWs::open_url(url, "graphql-transport-ws", Some(client_config(&ca))).await;
    ws.send(json!({"type": "connection_init", "payload": {"token": app.key}}))
        .await;
    assert!(matches!(ws.next(WAIT).await, Incoming::Json(v) if v["type"] == "connection_ack"));
    ws.subscribe(
        "p",
        "subscription { presenceChanged(numbers: [\"130\"]) { status cause { kind } } }",
        json!({}),
    )
    .await;
    let snapshot = ws.next_data("p", WAIT).await;
    assert_eq!(snapshot["presenceChanged"]["cause"]["kind"], "SNAPSHOT");
    let (code, _) = app
        .patch(
            &format!("/v1/pbx/extensions/{}", kim.id),
            json!({"presence": "dnd"}),
        )
        .await;
    assert_eq!(code, 200);
    let change = ws.next_data("p", WAIT).await;
    assert_eq!(change["presenceChanged"]["status"], "DND");
}
