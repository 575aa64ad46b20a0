//! Mutations: the same use cases as the REST shim.

use super::caller;
use super::types::{
    ConferenceParticipant, Extension, ExtensionCredentialsPayload, Mailbox, VoicemailMessage,
};
use crate::api::error::gql;
use crate::domain::{ExtensionType, GreetingType, PresenceSetting};
use crate::service::{ExtensionDraft, Field, MailboxDraft};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

fn field<T>(m: MaybeUndefined<T>) -> Field<T> {
    match m {
        MaybeUndefined::Undefined => Field::Absent,
        MaybeUndefined::Null => Field::Null,
        MaybeUndefined::Value(v) => Field::Value(v),
    }
}

fn optional<T>(o: Option<T>) -> Field<T> {
    o.map_or(Field::Absent, Field::Value)
}

#[derive(InputObject)]
pub struct CreateExtensionInput {
    /// 2 to 5 digits, unique in the PBX.
    number: String,
    /// 1 to 64 characters, at least one visible; no control characters, bidirectional
    /// controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+206F) or line and
    /// paragraph separators (U+2028, U+2029). Caller ID names follow the same rule.
    name: String,
    #[graphql(name = "type")]
    kind: Option<ExtensionType>,
    caller_id_name: Option<String>,
    /// E.164 (`+`, then 2 to 15 digits not starting with 0) or a national number of 3
    /// to 15 digits.
    caller_id_number: Option<String>,
    voicemail_enabled: Option<bool>,
    forwarding_number: Option<String>,
    /// 5 to 60 seconds; 20 when omitted.
    forwarding_ring_timeout: Option<i64>,
    presence: Option<PresenceSetting>,
    /// Conference extensions only: 4 to 8 digits callers enter (then `#`) to join.
    conference_pin: Option<String>,
    /// Conference extensions only: 1 to 500 callers at once; 50 when omitted.
    max_participants: Option<i64>,
}

/// Only the fields given change; `null` clears a nullable field.
#[derive(InputObject)]
pub struct UpdateExtensionInput {
    number: MaybeUndefined<String>,
    name: MaybeUndefined<String>,
    #[graphql(name = "type")]
    kind: MaybeUndefined<ExtensionType>,
    caller_id_name: MaybeUndefined<String>,
    caller_id_number: MaybeUndefined<String>,
    voicemail_enabled: MaybeUndefined<bool>,
    forwarding_number: MaybeUndefined<String>,
    forwarding_ring_timeout: MaybeUndefined<i64>,
    presence: MaybeUndefined<PresenceSetting>,
    /// Conference extensions only: 4 to 8 digits; `null` removes the PIN.
    conference_pin: MaybeUndefined<String>,
    /// Conference extensions only: 1 to 500; `null` restores 50.
    max_participants: MaybeUndefined<i64>,
}

/// Mailbox settings; only the fields given change, `null` restores the default.
#[derive(InputObject)]
pub struct UpdateMailboxInput {
    /// Where new messages are emailed (with `--smtp-url`): exactly one address.
    notify_email: MaybeUndefined<String>,
    /// 4 to 8 digits; stored hashed.
    pin: MaybeUndefined<String>,
    /// 10 to 600 seconds.
    max_message_seconds: MaybeUndefined<i64>,
    /// 1 to 3650 days.
    retention_days: MaybeUndefined<i64>,
    /// Only DEFAULT (drops a custom greeting); custom ones are uploaded over REST.
    greeting_type: MaybeUndefined<GreetingType>,
}

pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates an extension and, for a USER extension, provisions its SIP credentials
    /// (shown only here); other types get none.
    async fn create_extension(
        &self,
        ctx: &Context<'_>,
        input: CreateExtensionInput,
    ) -> Result<ExtensionCredentialsPayload> {
        let (services, principal) = caller(ctx)?;
        let draft = ExtensionDraft {
            number: Field::Value(input.number),
            name: Field::Value(input.name),
            kind: optional(input.kind),
            caller_id_name: optional(input.caller_id_name),
            caller_id_number: optional(input.caller_id_number),
            voicemail_enabled: optional(input.voicemail_enabled),
            forwarding_number: optional(input.forwarding_number),
            forwarding_ring_timeout: optional(input.forwarding_ring_timeout),
            presence: optional(input.presence),
            conference_pin: optional(input.conference_pin),
            max_participants: optional(input.max_participants),
        };
        Ok(services
            .create_extension(principal, draft)
            .await
            .map_err(gql)?
            .into())
    }

    async fn update_extension(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateExtensionInput,
    ) -> Result<Extension> {
        let (services, principal) = caller(ctx)?;
        let draft = ExtensionDraft {
            number: field(input.number),
            name: field(input.name),
            kind: field(input.kind),
            caller_id_name: field(input.caller_id_name),
            caller_id_number: field(input.caller_id_number),
            voicemail_enabled: field(input.voicemail_enabled),
            forwarding_number: field(input.forwarding_number),
            forwarding_ring_timeout: field(input.forwarding_ring_timeout),
            presence: field(input.presence),
            conference_pin: field(input.conference_pin),
            max_participants: field(input.max_participants),
        };
        let view = services
            .update_extension(principal, &id, draft)
            .await
            .map_err(gql)?;
        Ok(Extension(view))
    }

    /// Deletes an extension; returns its id.
    async fn delete_extension(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let (services, principal) = caller(ctx)?;
        services
            .delete_extension(principal, &id)
            .await
            .map_err(gql)?;
        Ok(id)
    }

    /// Issues a new SIP password (shown only here); the old one stops working. Only USER
    /// extensions have credentials: others get a `conflict` error on `type`.
    async fn reset_sip_credentials(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<ExtensionCredentialsPayload> {
        let (services, principal) = caller(ctx)?;
        Ok(services
            .reset_sip_credentials(principal, &id)
            .await
            .map_err(gql)?
            .into())
    }

    /// Sets the manual part of presence; AVAILABLE clears away/dnd.
    async fn set_presence(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: PresenceSetting,
    ) -> Result<Extension> {
        let (services, principal) = caller(ctx)?;
        Ok(Extension(
            services
                .set_presence(principal, &id, status)
                .await
                .map_err(gql)?,
        ))
    }

    async fn update_mailbox(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateMailboxInput,
    ) -> Result<Mailbox> {
        let (services, principal) = caller(ctx)?;
        let draft = MailboxDraft {
            notify_email: field(input.notify_email),
            pin: field(input.pin),
            max_message_seconds: field(input.max_message_seconds),
            retention_days: field(input.retention_days),
            greeting_type: field(input.greeting_type),
        };
        let mailbox = services
            .update_mailbox(principal, &id, draft)
            .await
            .map_err(gql)?;
        Ok(Mailbox(mailbox))
    }

    /// Marks a message heard (or new again); MWI lamps follow.
    async fn mark_voicemail_message(
        &self,
        ctx: &Context<'_>,
        mailbox_id: ID,
        id: ID,
        heard: bool,
    ) -> Result<VoicemailMessage> {
        let (services, principal) = caller(ctx)?;
        let message = services
            .mark_message(principal, &mailbox_id, &id, heard)
            .await
            .map_err(gql)?;
        Ok(VoicemailMessage(message))
    }

    /// Deletes a message and its audio; returns its id.
    async fn delete_voicemail_message(
        &self,
        ctx: &Context<'_>,
        mailbox_id: ID,
        id: ID,
    ) -> Result<ID> {
        let (services, principal) = caller(ctx)?;
        services
            .delete_message(principal, &mailbox_id, &id)
            .await
            .map_err(gql)?;
        Ok(id)
    }

    /// Mutes or unmutes a participant of a conference room (`conference`: the room's
    /// extension number or id); needs `pbx:conferences:write`. Answers the participant
    /// as it will be once the room has done it; `MUTED`/`UNMUTED` follow on
    /// `conferenceEvents`.
    async fn mute_participant(
        &self,
        ctx: &Context<'_>,
        conference: String,
        participant: ID,
        muted: bool,
    ) -> Result<ConferenceParticipant> {
        let (services, principal) = caller(ctx)?;
        Ok(services
            .mute_participant(principal, &conference, &participant, muted)
            .await
            .map_err(gql)?
            .into())
    }

    /// Hangs up on a participant (the room sends it a BYE); returns its id. Needs
    /// `pbx:conferences:write`.
    async fn kick_participant(
        &self,
        ctx: &Context<'_>,
        conference: String,
        participant: ID,
    ) -> Result<ID> {
        let (services, principal) = caller(ctx)?;
        services
            .kick_participant(principal, &conference, &participant)
            .await
            .map_err(gql)?;
        Ok(participant)
    }
}
