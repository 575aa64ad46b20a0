//! Read-only queries.

use super::caller;
use super::types::{
    Call, CallConnection, Conference, Device, Extension, ExtensionStats, Mailbox, PageInfo,
    PhoneStats, VoicemailMessage,
};
use crate::api::error::gql;
use crate::domain::{ExtensionType, PresenceStatus};
use crate::service::ServiceError;
use async_graphql::{Context, ID, Object, Result};

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Extensions of the caller's PBX, ordered by number.
    async fn extensions(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] kind: Option<ExtensionType>,
        status: Option<PresenceStatus>,
    ) -> Result<Vec<Extension>> {
        let (services, principal) = caller(ctx)?;
        let views = services
            .list_extensions(principal, kind, status)
            .await
            .map_err(gql)?;
        Ok(views.into_iter().map(Extension).collect())
    }

    /// One extension by `id` or by `number`; `null` when there is none in this PBX.
    async fn extension(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        number: Option<String>,
    ) -> Result<Option<Extension>> {
        let (services, principal) = caller(ctx)?;
        let found = match (id, number) {
            (Some(id), None) => services.get_extension(principal, &id).await,
            (None, Some(number)) => services.get_extension_by_number(principal, &number).await,
            _ => {
                return Err(
                    crate::api::ApiError::bad_request("Give exactly one of id and number")
                        .into_graphql(),
                );
            }
        };
        match found {
            Ok(view) => Ok(Some(Extension(view))),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(gql(e)),
        }
    }

    /// Devices of the caller's PBX: live ones and those seen in the last 30 days.
    async fn phones(&self, ctx: &Context<'_>) -> Result<Vec<Device>> {
        let (services, principal) = caller(ctx)?;
        let list = services.list_phones(principal, None).await.map_err(gql)?;
        Ok(list.into_iter().map(Device).collect())
    }

    /// Device counts: registered, unregistered, by type.
    async fn phone_stats(&self, ctx: &Context<'_>) -> Result<PhoneStats> {
        let (services, principal) = caller(ctx)?;
        Ok(services.phone_stats(principal).await.map_err(gql)?.into())
    }

    /// Calls of the caller's PBX, newest first; `active` for those ringing or up;
    /// `extension` (id or number) for one extension's.
    async fn calls(
        &self,
        ctx: &Context<'_>,
        active: Option<bool>,
        extension: Option<String>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<CallConnection> {
        let (services, principal) = caller(ctx)?;
        let extension_id = match extension {
            Some(key) => Some(
                services
                    .resolve_extension(principal, &key)
                    .await
                    .map_err(gql)?,
            ),
            None => None,
        };
        let page = services
            .list_calls(
                principal,
                active.unwrap_or(false),
                extension_id,
                usize::try_from(first.clamp(1, 500)).unwrap_or(50),
                after.as_deref(),
            )
            .await
            .map_err(gql)?;
        Ok(CallConnection {
            page_info: PageInfo {
                has_next_page: page.next.is_some(),
                end_cursor: page.next,
            },
            nodes: page.calls.into_iter().map(Call).collect(),
        })
    }

    /// Counts by type and by status.
    async fn extension_stats(&self, ctx: &Context<'_>) -> Result<ExtensionStats> {
        let (services, principal) = caller(ctx)?;
        Ok(services
            .extension_stats(principal)
            .await
            .map_err(gql)?
            .into())
    }

    /// Voicemail mailboxes of the caller's PBX (`pbx:voicemail:read`).
    async fn mailboxes(&self, ctx: &Context<'_>) -> Result<Vec<Mailbox>> {
        let (services, principal) = caller(ctx)?;
        let list = services.list_mailboxes(principal).await.map_err(gql)?;
        Ok(list.into_iter().map(Mailbox).collect())
    }

    /// One mailbox by id (`vm_<number>`); `null` when there is none in this PBX.
    async fn mailbox(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Mailbox>> {
        let (services, principal) = caller(ctx)?;
        match services.get_mailbox(principal, &id).await {
            Ok(m) => Ok(Some(Mailbox(m))),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(gql(e)),
        }
    }

    /// Messages of a mailbox, newest first.
    async fn voicemail_messages(
        &self,
        ctx: &Context<'_>,
        mailbox_id: ID,
    ) -> Result<Vec<VoicemailMessage>> {
        let (services, principal) = caller(ctx)?;
        let list = services
            .list_messages(principal, &mailbox_id)
            .await
            .map_err(gql)?;
        Ok(list.into_iter().map(VoicemailMessage).collect())
    }

    /// Conference rooms of the caller's PBX by number, with who is in each; only the
    /// occupied ones with `occupied: true`. Needs `pbx:conferences:read`.
    async fn conferences(
        &self,
        ctx: &Context<'_>,
        occupied: Option<bool>,
    ) -> Result<Vec<Conference>> {
        let (services, principal) = caller(ctx)?;
        let rooms = services
            .list_conferences(principal, occupied.unwrap_or(false))
            .await
            .map_err(gql)?;
        Ok(rooms.into_iter().map(Conference::from).collect())
    }

    /// One conference room by its extension's number (or id); `null` when this PBX has
    /// no such conference extension.
    async fn conference(&self, ctx: &Context<'_>, number: String) -> Result<Option<Conference>> {
        let (services, principal) = caller(ctx)?;
        match services.get_conference(principal, &number).await {
            Ok(room) => Ok(Some(room.into())),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(gql(e)),
        }
    }
}
