//! Calls: records created, answered and ended by the SIP proxy; busy presence while
//! answered; listings for the API. Every change is stored before it is announced, and
//! the changes of one call are applied in order (one lock per call).

use super::{ServiceResult, Services};
use crate::auth::{Principal, Scope};
use crate::clock::now_ms;
use crate::domain::ExtensionRef;
use crate::domain::{
    Call, CallDirection, CallState, CallTarget, Disposition, Extension, HangupSide, derive_status,
};
use crate::events::{CallChange, CauseKind, Event, PresenceCause, PresenceChange};
use crate::store::batch::BatchWriter;
use crate::store::calls::{CallFilter, CallRow};
use std::sync::Arc;

pub type CallWriter = BatchWriter<CallRow>;

/// One side of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub extension_id: Option<String>,
    pub number: String,
    pub name: Option<String>,
}

impl Party {
    pub fn extension(ext: &Extension) -> Party {
        Party {
            extension_id: Some(ext.id.clone()),
            number: ext.number.clone(),
            name: Some(ext.name.clone()),
        }
    }
}

/// A live call record; changes go through [`Services`] methods, one at a time.
pub struct CallHandle {
    call: tokio::sync::Mutex<Call>,
}

impl CallHandle {
    pub async fn snapshot(&self) -> Call {
        self.call.lock().await.clone()
    }
}

/// A page of calls and the cursor for the next one.
pub struct CallPage {
    pub calls: Vec<Call>,
    pub next: Option<String>,
}

/// `answered_by` of a call voicemail took.
pub const VOICEMAIL: &str = "voicemail";

/// The extensions an answered call keeps busy: both sides, or only the caller when
/// voicemail answered.
fn busy_extensions(call: &Call) -> Vec<String> {
    if call.answered_by.as_deref() == Some(VOICEMAIL) {
        call.caller_extension_id.iter().cloned().collect()
    } else {
        call.extension_ids().map(str::to_owned).collect()
    }
}

fn cursor_of(call: &Call) -> String {
    format!("{}.{}", call.started_at, call.id)
}

fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (at, id) = raw.split_once('.')?;
    Some((at.parse().ok()?, id.to_owned()))
}

impl Services {
    /// The extension a dialled string names in a PBX (number or SIP username), with
    /// what routing needs to know about it.
    pub async fn call_target(
        &self,
        pbx_id: &str,
        dialled: &str,
    ) -> ServiceResult<Option<(Extension, CallTarget)>> {
        let ext = match self.store.extension_by_number(pbx_id, dialled).await? {
            Some(e) => Some(e),
            None => self
                .store
                .sip_secrets(dialled)
                .await?
                .map(|s| s.extension)
                .filter(|e| e.pbx_id == pbx_id),
        };
        Ok(ext.map(|ext| {
            let target = CallTarget {
                kind: ext.kind,
                dnd: ext.manual_presence == Some(crate::domain::ManualPresence::Dnd),
                live_devices: self.live_bindings(&ext.id).len() as u32,
                voicemail_enabled: ext.voicemail_enabled,
                forwarding_number: ext.forwarding_number.clone(),
                ring_timeout_secs: ext.forwarding_ring_timeout,
            };
            (ext, target)
        }))
    }

    async fn store_and_announce(&self, call: &Call, kind: CallState) -> ServiceResult<()> {
        self.call_writer.write(vec![CallRow::from(call)]).await?;
        self.bus.publish(Event::Call(Box::new(CallChange {
            pbx_id: call.pbx_id.clone(),
            kind,
            call: call.clone(),
            at: now_ms(),
        })));
        Ok(())
    }

    /// Records a new call (ringing).
    pub async fn start_call(
        &self,
        pbx_id: &str,
        sip_call_id: &str,
        direction: CallDirection,
        caller: Party,
        callee: Party,
    ) -> ServiceResult<Arc<CallHandle>> {
        let call = Call {
            id: crate::ids::resource_id("call"),
            pbx_id: pbx_id.to_owned(),
            sip_call_id: sip_call_id.to_owned(),
            direction,
            caller_extension_id: caller.extension_id,
            caller_number: caller.number,
            caller_name: caller.name,
            callee_extension_id: callee.extension_id,
            callee_number: callee.number,
            callee_name: callee.name,
            state: CallState::Ringing,
            started_at: now_ms(),
            answered_at: None,
            ended_at: None,
            answered_by: None,
            disposition: None,
            hangup_side: None,
            end_reason: None,
            forwarded_to: None,
            node_id: self.config.node_id.clone(),
        };
        self.store_and_announce(&call, CallState::Ringing).await?;
        Ok(Arc::new(CallHandle {
            call: tokio::sync::Mutex::new(call),
        }))
    }

    /// The call was forwarded (ring timeout or unreachable) to `number`, now reached
    /// as `callee` when that is an extension.
    pub async fn forward_call(
        &self,
        handle: &CallHandle,
        number: &str,
        callee: Option<Party>,
    ) -> ServiceResult<()> {
        let mut call = handle.call.lock().await;
        if !call.is_active() {
            return Ok(());
        }
        call.forwarded_to = Some(number.to_owned());
        if let Some(p) = callee {
            call.callee_extension_id = p.extension_id;
            call.callee_name = p.name;
        }
        self.call_writer.write(vec![CallRow::from(&*call)]).await?;
        Ok(())
    }

    /// A device answered: the call is up and its extensions are busy.
    pub async fn answer_call(
        &self,
        handle: &CallHandle,
        answered_by: Option<String>,
    ) -> ServiceResult<()> {
        let mut call = handle.call.lock().await;
        if call.state != CallState::Ringing {
            return Ok(());
        }
        call.state = CallState::Answered;
        call.answered_at = Some(now_ms());
        call.answered_by = answered_by;
        self.store_and_announce(&call, CallState::Answered).await?;
        for ext in busy_extensions(&call) {
            self.adjust_calls(&call, &ext, 1).await?;
        }
        Ok(())
    }

    /// Voicemail answered: the call is up, and only the caller is busy (the callee is
    /// not on it).
    pub async fn answer_by_voicemail(&self, handle: &CallHandle) -> ServiceResult<()> {
        let mut call = handle.call.lock().await;
        if call.state != CallState::Ringing {
            return Ok(());
        }
        call.state = CallState::Answered;
        call.answered_at = Some(now_ms());
        call.answered_by = Some(VOICEMAIL.to_owned());
        self.store_and_announce(&call, CallState::Answered).await?;
        for ext in busy_extensions(&call) {
            self.adjust_calls(&call, &ext, 1).await?;
        }
        Ok(())
    }

    /// The call is over. Idempotent: only the first ending counts.
    pub async fn end_call(
        &self,
        handle: &CallHandle,
        disposition: Disposition,
        hangup: HangupSide,
        reason: Option<&str>,
    ) -> ServiceResult<()> {
        let mut call = handle.call.lock().await;
        if call.state == CallState::Ended {
            return Ok(());
        }
        let was_answered = call.state == CallState::Answered;
        call.state = CallState::Ended;
        call.ended_at = Some(now_ms());
        call.disposition = Some(disposition);
        call.hangup_side = Some(hangup);
        call.end_reason = reason.map(str::to_owned);
        self.store_and_announce(&call, CallState::Ended).await?;
        if was_answered {
            for ext in busy_extensions(&call) {
                self.adjust_calls(&call, &ext, -1).await?;
            }
        }
        tracing::info!(
            call.id = %call.id,
            sip.call_id = %call.sip_call_id,
            disposition = disposition.as_str(),
            hangup = hangup.as_str(),
            "call ended"
        );
        Ok(())
    }

    /// Moves an extension's answered-call count and announces a presence change.
    async fn adjust_calls(&self, call: &Call, extension_id: &str, delta: i32) -> ServiceResult<()> {
        let _guard = self.locks.lock(extension_id).await;
        let devices = self.live.devices(extension_id);
        let before = self.live.calls(extension_id);
        let after = before.saturating_add_signed(delta);
        self.live.set_calls(extension_id, after);
        // Only a move between no call and some can change the status.
        if (before == 0) == (after == 0) {
            return Ok(());
        }
        let Some(ext) = self
            .store
            .extension_by_id(&call.pbx_id, extension_id)
            .await?
        else {
            return Ok(());
        };
        if ext.kind == crate::domain::ExtensionType::Conference {
            // A room's status follows who is in it (see `conferences`), not its calls.
            return Ok(());
        }
        let old = derive_status(ext.manual_presence, before, devices);
        let new = derive_status(ext.manual_presence, after, devices);
        if old != new {
            let other = if call.caller_extension_id.as_deref() == Some(extension_id) {
                call.callee_name
                    .clone()
                    .unwrap_or_else(|| call.callee_number.clone())
            } else {
                call.caller_name
                    .clone()
                    .unwrap_or_else(|| call.caller_number.clone())
            };
            let what = if delta > 0 {
                "on a call with"
            } else {
                "call ended with"
            };
            self.bus.publish(Event::Presence(PresenceChange {
                pbx_id: call.pbx_id.clone(),
                extension: ExtensionRef::from(&ext),
                status: new,
                previous_status: Some(old),
                cause: PresenceCause {
                    kind: CauseKind::Call,
                    description: format!("{what} {other}"),
                    reason: Some(if delta > 0 { "answered" } else { "ended" }.to_owned()),
                    device_id: None,
                    call_id: Some(call.id.clone()),
                },
                at: now_ms(),
            }));
        }
        Ok(())
    }

    /// Calls of the caller's PBX, newest first: `first` per page, after a cursor.
    pub async fn list_calls(
        &self,
        principal: &Principal,
        active_only: bool,
        extension_id: Option<String>,
        first: usize,
        after: Option<&str>,
    ) -> ServiceResult<CallPage> {
        principal.require(Scope::ExtensionsRead)?;
        let before = match after {
            Some(raw) => Some(parse_cursor(raw).ok_or_else(|| {
                crate::domain::ValidationError::new("after", "is not a cursor from this listing")
            })?),
            None => None,
        };
        let first = first.clamp(1, 500);
        let mut calls = self
            .store
            .list_calls(
                &principal.pbx_id,
                &CallFilter {
                    active_only,
                    extension_id,
                    before,
                    limit: first as i64 + 1,
                },
            )
            .await?;
        let next = if calls.len() > first {
            calls.truncate(first);
            calls.last().map(cursor_of)
        } else {
            None
        };
        Ok(CallPage { calls, next })
    }

    /// An extension of the caller's PBX by id or number (for filters).
    pub async fn resolve_extension(
        &self,
        principal: &Principal,
        key: &str,
    ) -> ServiceResult<String> {
        principal.require(Scope::ExtensionsRead)?;
        if let Some(ext) = self.store.extension_by_id(&principal.pbx_id, key).await? {
            return Ok(ext.id);
        }
        match self
            .store
            .extension_by_number(&principal.pbx_id, key)
            .await?
        {
            Some(ext) => Ok(ext.id),
            None => Err(crate::service::ServiceError::NotFound("extension")),
        }
    }

    /// Marks calls a previous run left unfinished as ended (at start).
    pub async fn end_orphaned_calls(&self) -> ServiceResult<usize> {
        Ok(self
            .store
            .end_orphaned_calls(&self.config.node_id, now_ms())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(
            parse_cursor("1700000000000.call_abc"),
            Some((1_700_000_000_000, "call_abc".into()))
        );
        assert_eq!(parse_cursor("x.call"), None);
        assert_eq!(parse_cursor("nodot"), None);
    }
}
