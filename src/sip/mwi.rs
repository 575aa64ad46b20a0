//! Message waiting indication (RFC 3842 over RFC 6665): phones SUBSCRIBE to
//! `message-summary` for their own mailbox (digest-authenticated) and get a NOTIFY at
//! once and whenever the counts change. Registered devices that did not subscribe get
//! the same NOTIFY out of dialog ("unsolicited MWI", which most desk phones expect):
//! on every count change, and when they register while the mailbox holds messages (or
//! their lamp was last lit, so it can go out).

use super::authenticate::DigestAuth;
use super::location;
use super::message::{Method, Name, Request, Response};
use super::stack::transaction::TxKey;
use super::stack::transport::Origin;
use super::stack::{OwnDialog, RequestCtx, SipStack, random_tag};
use super::uas::UasDialog;
use super::uri::{NameAddr, Uri};
use crate::events::VoicemailChange;
use crate::service::Services;
use crate::sync::MutexExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

pub const EVENT: &str = "message-summary";
const CONTENT_TYPE: &str = "application/simple-message-summary";
const DEFAULT_EXPIRES: u32 = 3600;
const MAX_EXPIRES: u32 = 86_400;
const MIN_EXPIRES: u32 = 60;

/// One subscription (a dialog we NOTIFY in).
pub struct Subscription {
    extension_id: String,
    pbx_id: String,
    account: String,
    dialog: UasDialog,
    expires_at: Mutex<Instant>,
    /// One NOTIFY at a time, each with the counts as they are when it is sent, so the
    /// last one a phone sees is the current state.
    sending: tokio::sync::Mutex<()>,
}

/// The MWI application: live subscriptions, counts as last seen, and devices whose lamp
/// we lit.
pub struct Mwi {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    auth: Arc<DigestAuth>,
    by_call_id: Mutex<HashMap<String, Arc<Subscription>>>,
    /// extension id → (new, old)
    counts: Mutex<HashMap<String, (u32, u32)>>,
    /// Contacts last told "yes", so a later "no" reaches them even after a restart of
    /// the phone.
    lit: Mutex<HashSet<String>>,
}

impl Mwi {
    pub fn new(stack: Arc<SipStack>, services: Arc<Services>, auth: Arc<DigestAuth>) -> Self {
        Self {
            stack,
            services,
            auth,
            by_call_id: Default::default(),
            counts: Default::default(),
            lit: Default::default(),
        }
    }

    /// Whether `call_id` is one of our subscriptions' dialogs.
    pub fn knows(&self, call_id: &str) -> bool {
        self.by_call_id.lock_unpoisoned().contains_key(call_id)
    }

    fn get(&self, call_id: &str) -> Option<Arc<Subscription>> {
        self.by_call_id.lock_unpoisoned().get(call_id).cloned()
    }

    fn of_extension(&self, extension_id: &str) -> Vec<Arc<Subscription>> {
        let now = Instant::now();
        let mut map = self.by_call_id.lock_unpoisoned();
        map.retain(|_, s| *s.expires_at.lock_unpoisoned() > now);
        map.values()
            .filter(|s| s.extension_id == extension_id)
            .cloned()
            .collect()
    }

    /// Live subscriptions.
    pub fn len(&self) -> usize {
        self.by_call_id.lock_unpoisoned().len()
    }

    /// Listens to the bus for mailbox changes until the server stops.
    pub fn listen(self: &Arc<Self>) {
        let mwi = self.clone();
        let mut events = self
            .services
            .subscribe_events(None, |e| matches!(e, crate::events::Event::Voicemail(_)));
        let stop = self.stack.shutdown().clone();
        tokio::spawn(async move {
            loop {
                let envelope = tokio::select! {
                    received = events.receiver.recv() => received,
                    () = stop.cancelled() => return,
                };
                match envelope {
                    Ok(envelope) => {
                        if let crate::events::Event::Voicemail(change) = &envelope.event {
                            mwi.on_voicemail_change(change).await;
                        }
                    }
                    Err(crate::events::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "MWI fell behind the event bus");
                    }
                    Err(crate::events::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// The `application/simple-message-summary` body (RFC 3842 §5.2).
pub fn summary(account: &str, new: u32, old: u32) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{old} (0/0)\r\n",
        if new > 0 { "yes" } else { "no" }
    )
}

/// `Event: message-summary;id=…` names our package (parameters aside).
fn is_mwi_event(raw: Option<&str>) -> bool {
    raw.and_then(|e| e.split(';').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(EVENT))
}

impl Mwi {
    /// A SUBSCRIBE outside a dialog.
    pub async fn subscribe(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: TxKey,
    ) {
        match self.new_subscription(req, ctx, origin).await {
            Ok((resp, sub)) => {
                self.stack.finish(key, origin, resp);
                self.notify_subscriber(sub).await;
            }
            Err(resp) => self.stack.finish(key, origin, resp),
        }
    }

    async fn new_subscription(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Result<(Response, Arc<Subscription>), Response> {
        if !is_mwi_event(req.headers.get(&Name::Event)) {
            let mut resp = self.stack.response(req, ctx, origin, 489, "Bad Event");
            resp.headers.push(Name::AllowEvents, EVENT);
            return Err(resp);
        }
        let (pbx, account) = self
            .auth
            .user_agent_account(req, ctx, origin)
            .await
            .map_err(|resp| *resp)?;
        // Only one's own mailbox.
        let wanted = req.uri.user_unescaped().unwrap_or_default();
        if wanted != account.number && wanted != account.sip_username {
            return Err(self.stack.warned(
                req,
                ctx,
                origin,
                403,
                "Forbidden",
                "subscribe to your own mailbox",
            ));
        }
        let expires = match requested_expires(req) {
            Ok(e) => e,
            Err(resp_status) => {
                let mut resp =
                    self.stack
                        .response(req, ctx, origin, resp_status, "Interval Too Brief");
                resp.headers.push(Name::MinExpires, MIN_EXPIRES.to_string());
                return Err(resp);
            }
        };
        if req
            .headers
            .get(&Name::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
            .is_none()
        {
            return Err(self
                .stack
                .response(req, ctx, origin, 400, "Missing Contact"));
        }
        let mut resp = self.stack.response(req, ctx, origin, 200, "OK");
        resp.headers.push(Name::Expires, expires.to_string());
        resp.headers.push(
            Name::Contact,
            format!("<sip:{}@{}>", account.number, self.stack.advertised()),
        );
        let local = resp.headers.get(&Name::To).unwrap_or_default().to_owned();
        let sub = Arc::new(Subscription {
            extension_id: account.extension_id.clone(),
            pbx_id: account.pbx_id.clone(),
            account: format!("sip:{}@{}", account.number, pbx.sip_domain),
            dialog: UasDialog::new(req, ctx, origin, &local),
            expires_at: Mutex::new(Instant::now() + Duration::from_secs(expires.into())),
            sending: tokio::sync::Mutex::new(()),
        });
        if expires > 0 {
            self.by_call_id
                .lock_unpoisoned()
                .insert(sub.dialog.call_id.clone(), sub.clone());
        }
        // Expires 0 is a fetch: one NOTIFY (terminated), no subscription.
        Ok((resp, sub))
    }

    /// A request in one of our subscriptions' dialogs: a refresh or an unsubscribe.
    pub async fn request(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: Option<TxKey>,
    ) {
        let (Some(key), Some(sub)) = (key, self.get(&ctx.call_id)) else {
            return;
        };
        if !sub.dialog.is_from_peer(ctx) || req.method != Method::Subscribe {
            let status = if req.method == Method::Subscribe {
                481
            } else {
                405
            };
            let mut resp = self.stack.response(
                req,
                ctx,
                origin,
                status,
                if status == 481 {
                    "Call/Transaction Does Not Exist"
                } else {
                    "Method Not Allowed"
                },
            );
            if status == 405 {
                resp.headers.push(Name::Allow, "SUBSCRIBE");
            }
            return self.stack.finish(key, origin, resp);
        }
        let expires = match requested_expires(req) {
            Ok(e) => e,
            Err(status) => {
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, status, "Interval Too Brief");
                resp.headers.push(Name::MinExpires, MIN_EXPIRES.to_string());
                return self.stack.finish(key, origin, resp);
            }
        };
        *sub.expires_at.lock_unpoisoned() = Instant::now() + Duration::from_secs(expires.into());
        if expires == 0 {
            self.by_call_id
                .lock_unpoisoned()
                .remove(&sub.dialog.call_id);
        }
        let mut resp = self.stack.response(req, ctx, origin, 200, "OK");
        resp.headers.push(Name::Expires, expires.to_string());
        self.stack.finish(key, origin, resp);
        self.notify_subscriber(sub).await;
    }

    /// The counts of an extension's mailbox (cached; the bus keeps them current).
    async fn mwi_counts(&self, pbx_id: &str, extension_id: &str) -> Option<(u32, u32)> {
        if let Some(c) = self.counts.lock_unpoisoned().get(extension_id) {
            return Some(*c);
        }
        match self.services.mailbox_counts(pbx_id, extension_id).await {
            Ok(c) => {
                self.counts
                    .lock_unpoisoned()
                    .entry(extension_id.to_owned())
                    .or_insert(c);
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "mailbox counts unavailable");
                None
            }
        }
    }

    /// NOTIFY in a subscription's dialog with the current counts (terminated once it
    /// expired). A subscriber that answers 481 (or not at all) is dropped.
    async fn notify_subscriber(self: &Arc<Self>, sub: Arc<Subscription>) {
        let _one_at_a_time = sub.sending.lock().await;
        let Some((new, old)) = self.mwi_counts(&sub.pbx_id, &sub.extension_id).await else {
            return;
        };
        let remaining = sub
            .expires_at
            .lock_unpoisoned()
            .saturating_duration_since(Instant::now());
        let state = if remaining.is_zero() {
            "terminated;reason=timeout".to_owned()
        } else {
            format!("active;expires={}", remaining.as_secs().max(1))
        };
        let (mut req, branch) = sub.dialog.request(&self.stack, Method::Notify);
        req.headers.push(
            Name::Contact,
            format!("<sip:voicemail@{}>", self.stack.advertised()),
        );
        req.headers.push(Name::Event, EVENT);
        req.headers.push(Name::SubscriptionState, state);
        req.headers.push(Name::ContentType, CONTENT_TYPE);
        req.body = summary(&sub.account, new, old).into_bytes();
        let status = self
            .stack
            .send_and_wait(req, branch, sub.dialog.origin)
            .await;
        if matches!(status, None | Some(481 | 404 | 410)) {
            self.by_call_id
                .lock_unpoisoned()
                .remove(&sub.dialog.call_id);
        }
    }

    /// A NOTIFY outside any dialog to one registered device.
    async fn notify_device(
        self: &Arc<Self>,
        contact: Uri,
        dest: Origin,
        account: &str,
        new: u32,
        old: u32,
    ) {
        let key = contact.to_string();
        {
            let mut lit = self.lit.lock_unpoisoned();
            if new > 0 {
                lit.insert(key);
            } else {
                lit.remove(&key);
            }
        }
        let tag = random_tag();
        let from = format!("<{account}>;tag={tag}");
        let to = format!("<{account}>");
        let call_id = format!("mwi-{}", crate::ids::lower_alnum(16));
        let (mut req, branch) = self.stack.own_request(
            Method::Notify,
            contact,
            OwnDialog {
                from: &from,
                to: &to,
                call_id: &call_id,
                cseq: 1,
            },
            dest.transport,
        );
        req.headers.push(Name::Event, EVENT);
        req.headers.push(Name::SubscriptionState, "active");
        req.headers.push(Name::ContentType, CONTENT_TYPE);
        req.body = summary(account, new, old).into_bytes();
        let _ = self.stack.send_and_wait(req, branch, dest).await;
    }

    /// Counts changed: every subscriber and every registered device of the extension
    /// hears of it (a device with its own subscription only once).
    async fn on_voicemail_change(self: &Arc<Self>, change: &VoicemailChange) {
        self.counts.lock_unpoisoned().insert(
            change.extension.id.clone(),
            (change.new_messages, change.old_messages),
        );
        let subs = self.of_extension(&change.extension.id);
        let subscribed: HashSet<std::net::SocketAddr> =
            subs.iter().map(|s| s.dialog.origin.remote).collect();
        for sub in subs {
            let mwi = self.clone();
            tokio::spawn(async move { mwi.notify_subscriber(sub).await });
        }
        let Some(domain) = self.pbx_domain(&change.pbx_id).await else {
            return;
        };
        let account = format!("sip:{}@{domain}", change.extension.number);
        for (contact, dest) in
            location::device_destinations(&self.stack, &self.services, &change.extension.id)
        {
            if subscribed.contains(&dest.remote) {
                continue;
            }
            let mwi = self.clone();
            let account = account.clone();
            let (pbx_id, extension_id) = (change.pbx_id.clone(), change.extension.id.clone());
            tokio::spawn(async move {
                if let Some((new, old)) = mwi.mwi_counts(&pbx_id, &extension_id).await {
                    mwi.notify_device(contact, dest, &account, new, old).await;
                }
            });
        }
    }

    /// After a registration: the device learns the mailbox state when there is
    /// something to show (or its lamp is lit and should go out).
    pub async fn on_register(
        self: &Arc<Self>,
        pbx_id: &str,
        domain: &str,
        extension_id: &str,
        number: &str,
        contacts: Vec<Uri>,
    ) {
        let Some((new, old)) = self.mwi_counts(pbx_id, extension_id).await else {
            return;
        };
        let account = format!("sip:{number}@{domain}");
        for (contact, dest) in
            location::device_destinations(&self.stack, &self.services, extension_id)
        {
            if !contacts.iter().any(|c| c.equivalent(&contact)) {
                continue;
            }
            let lit = self.lit.lock_unpoisoned().contains(&contact.to_string());
            if new + old > 0 || lit {
                self.notify_device(contact, dest, &account, new, old).await;
            }
        }
    }

    async fn pbx_domain(&self, pbx_id: &str) -> Option<String> {
        match self.services.pbx_by_id_or_name(pbx_id).await {
            Ok(Some(pbx)) => Some(pbx.sip_domain),
            _ => None,
        }
    }
}

/// The Expires a SUBSCRIBE asks for, capped; `Err(423)` when too brief.
fn requested_expires(req: &Request) -> Result<u32, u16> {
    let asked = req
        .headers
        .get(&Name::Expires)
        .and_then(super::headers::parse_delta_seconds)
        .unwrap_or(DEFAULT_EXPIRES);
    if asked != 0 && asked < MIN_EXPIRES {
        return Err(423);
    }
    Ok(asked.min(MAX_EXPIRES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_follow_rfc_3842() {
        assert_eq!(
            summary("sip:102@pbx.example", 2, 5),
            "Messages-Waiting: yes\r\nMessage-Account: sip:102@pbx.example\r\nVoice-Message: 2/5 (0/0)\r\n"
        );
        assert!(summary("sip:102@x", 0, 5).starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn only_the_message_summary_package_is_ours() {
        assert!(is_mwi_event(Some("message-summary")));
        assert!(is_mwi_event(Some("Message-Summary;id=4")));
        assert!(!is_mwi_event(Some("presence")));
        assert!(!is_mwi_event(None));
    }
}
