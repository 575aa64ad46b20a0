//! Calls: the record, a page of them, and the event of one ringing, answered or ended.

use crate::clock::rfc3339;
use crate::domain;
use async_graphql::{ID, Object, SimpleObject};

/// One side of a call.
#[derive(SimpleObject)]
pub struct CallParty {
    pub extension_id: Option<ID>,
    pub number: String,
    pub name: Option<String>,
}

/// A call: its record while it rings, once answered, and after it ended.
pub struct Call(pub domain::Call);

#[Object]
impl Call {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn sip_call_id(&self) -> &str {
        &self.0.sip_call_id
    }
    async fn direction(&self) -> domain::CallDirection {
        self.0.direction
    }
    async fn caller(&self) -> CallParty {
        CallParty {
            extension_id: self.0.caller_extension_id.clone().map(ID),
            number: self.0.caller_number.clone(),
            name: self.0.caller_name.clone(),
        }
    }
    async fn callee(&self) -> CallParty {
        CallParty {
            extension_id: self.0.callee_extension_id.clone().map(ID),
            number: self.0.callee_number.clone(),
            name: self.0.callee_name.clone(),
        }
    }
    async fn state(&self) -> domain::CallState {
        self.0.state
    }
    async fn started_at(&self) -> String {
        rfc3339(self.0.started_at)
    }
    async fn answered_at(&self) -> Option<String> {
        self.0.answered_at.map(rfc3339)
    }
    async fn ended_at(&self) -> Option<String> {
        self.0.ended_at.map(rfc3339)
    }
    /// The device that answered.
    async fn answered_by(&self) -> Option<ID> {
        self.0.answered_by.clone().map(ID)
    }
    async fn disposition(&self) -> Option<domain::Disposition> {
        self.0.disposition
    }
    async fn hangup_side(&self) -> Option<domain::HangupSide> {
        self.0.hangup_side
    }
    async fn end_reason(&self) -> Option<&str> {
        self.0.end_reason.as_deref()
    }
    async fn forwarded_to(&self) -> Option<&str> {
        self.0.forwarded_to.as_deref()
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// A page of calls, newest first.
#[derive(SimpleObject)]
pub struct CallConnection {
    pub nodes: Vec<Call>,
    pub page_info: PageInfo,
}

/// A call rang, was answered or ended.
#[derive(SimpleObject)]
pub struct CallEvent {
    pub kind: domain::CallState,
    pub call: Call,
    pub at: String,
    pub sequence: u64,
}
