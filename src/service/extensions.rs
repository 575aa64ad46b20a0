//! Extensions: list, read, create (with SIP credentials), update, delete, rotate
//! credentials, set presence.

use super::{Field, ServiceError, ServiceResult, Services};
use crate::auth::{Principal, Scope, digest};
use crate::clock::now_ms;
use crate::domain::{
    CallerIdName, CallerIdNumber, ConferencePin, Extension, ExtensionName, ExtensionNumber,
    ExtensionRef, ExtensionType, ExtensionView, ForwardingNumber, MaxParticipants, PresenceSetting,
    PresenceStatus, RingTimeout, ValidationError, derive_status, room_status,
};
use crate::events::{CauseKind, ChangeKind, Event, ExtensionChange, PresenceCause, PresenceChange};
use crate::store::StoreError;
use crate::store::extensions::{ExtensionChangeset, ExtensionRow};

/// Raw extension input, as REST and GraphQL both hand it over. Parsing into domain
/// types happens here, once, for both.
#[derive(Debug, Clone, Default)]
pub struct ExtensionDraft {
    pub number: Field<String>,
    pub name: Field<String>,
    pub kind: Field<ExtensionType>,
    pub caller_id_name: Field<String>,
    pub caller_id_number: Field<String>,
    pub voicemail_enabled: Field<bool>,
    pub forwarding_number: Field<String>,
    pub forwarding_ring_timeout: Field<i64>,
    pub presence: Field<PresenceSetting>,
    /// Conference extensions only: 4 to 8 digits; `null` removes the PIN.
    pub conference_pin: Field<String>,
    /// Conference extensions only: 1 to 500; `null` restores the default (50).
    pub max_participants: Field<i64>,
}

/// What a draft asks of the conference settings, kept beside its changeset: whether a
/// value (not a `null`) was given, which only a conference extension may take.
#[derive(Debug, Clone, Copy, Default)]
struct ConferenceInput {
    pin: bool,
    max_participants: bool,
}

impl ConferenceInput {
    /// Checks the conference rules once the extension's type after the change is
    /// known, and makes the changeset keep them: a PIN or a room size only on a
    /// conference, no away/dnd on one (its status follows its room). An extension that
    /// becomes a conference drops its manual presence; one that stops being one drops
    /// its PIN and room size.
    fn apply(
        self,
        kind: ExtensionType,
        changes: &mut ExtensionChangeset,
    ) -> Result<(), ValidationError> {
        let type_changes = changes.kind.is_some();
        if kind == ExtensionType::Conference {
            if matches!(changes.manual_presence, Some(Some(_))) {
                return Err(ValidationError::new(
                    "presence",
                    "cannot be away or dnd on a conference extension: its status follows its \
                     room (busy while anyone is in it)",
                ));
            }
            if type_changes {
                changes.manual_presence = Some(None);
            }
            return Ok(());
        }
        let only_conferences = |field: &'static str| {
            ValidationError::new(
                field,
                format!(
                    "can only be set on conference extensions, not on a {} extension",
                    kind.as_str()
                ),
            )
        };
        if self.pin {
            return Err(only_conferences("conferencePin"));
        }
        if self.max_participants {
            return Err(only_conferences("maxParticipants"));
        }
        if type_changes {
            changes.conference_pin = Some(None);
            changes.max_participants = Some(i32::from(MaxParticipants::DEFAULT.get()));
        }
        Ok(())
    }
}

impl ExtensionDraft {
    /// Validates every field present and turns the draft into a column changeset, with
    /// what the conference rules still need to check.
    fn into_changeset(self) -> Result<(ExtensionChangeset, ConferenceInput), ValidationError> {
        let conference = ConferenceInput {
            pin: matches!(self.conference_pin, Field::Value(_)),
            max_participants: matches!(self.max_participants, Field::Value(_)),
        };
        let number = self
            .number
            .required_or_absent("number")?
            .map(|n| ExtensionNumber::parse(&n).map(ExtensionNumber::into_inner))
            .transpose()?;
        let name = self
            .name
            .required_or_absent("name")?
            .map(|n| ExtensionName::parse(&n).map(ExtensionName::into_inner))
            .transpose()?;
        let kind = self
            .kind
            .required_or_absent("type")?
            .map(|k| k.as_str().to_owned());
        let caller_id_name = self
            .caller_id_name
            .nullable(|v| CallerIdName::parse(&v).map(CallerIdName::into_inner))?;
        let caller_id_number = self
            .caller_id_number
            .nullable(|v| CallerIdNumber::parse(&v).map(CallerIdNumber::into_inner))?;
        let voicemail_enabled = self
            .voicemail_enabled
            .required_or_absent("voicemailEnabled")?;
        let forwarding_number = self
            .forwarding_number
            .nullable(|v| ForwardingNumber::parse(&v).map(ForwardingNumber::into_inner))?;
        let forwarding_ring_timeout = self
            .forwarding_ring_timeout
            .required_or_absent("forwardingRingTimeout")?
            .map(|t| RingTimeout::parse(t).map(|t| i32::from(t.seconds())))
            .transpose()?;
        let manual_presence = self
            .presence
            .required_or_absent("presence")?
            .map(|p| p.manual().map(|m| m.as_str().to_owned()));
        let conference_pin = self
            .conference_pin
            .nullable(|v| ConferencePin::parse(&v).map(ConferencePin::into_inner))?;
        let max_participants = match self.max_participants {
            Field::Absent => None,
            Field::Null => Some(MaxParticipants::DEFAULT),
            Field::Value(n) => Some(MaxParticipants::parse(n)?),
        }
        .map(|m| i32::from(m.get()));
        let changes = ExtensionChangeset {
            number,
            name,
            kind,
            caller_id_name,
            caller_id_number,
            voicemail_enabled,
            forwarding_number,
            forwarding_ring_timeout,
            manual_presence,
            ha1_md5: None,
            ha1_sha256: None,
            updated_at: None,
            conference_pin,
            max_participants,
        };
        Ok((changes, conference))
    }
}

/// SIP credentials, shown once on create and on rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCredentials {
    pub username: String,
    pub password: String,
    pub domain: String,
}

#[derive(Debug, Clone)]
pub struct CreatedExtension {
    pub extension: ExtensionView,
    /// `None` for conference, parking and paging extensions: only `user` extensions
    /// have phones, so only they get credentials.
    pub sip_credentials: Option<SipCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionStats {
    pub total: u32,
    pub by_type: Vec<(ExtensionType, u32)>,
    pub by_status: Vec<(PresenceStatus, u32)>,
    pub registered_devices: u32,
}

fn number_conflict(number: &str) -> ServiceError {
    ServiceError::Conflict {
        field: "number",
        message: format!("Extension number {number} already exists"),
    }
}

impl Services {
    /// The extension with its live state.
    pub fn view(&self, extension: Extension) -> ExtensionView {
        let devices = self.live.devices(&extension.id);
        let status = if extension.kind == ExtensionType::Conference {
            room_status(self.room_occupancy(&extension.id))
        } else {
            derive_status(
                extension.manual_presence,
                self.live.calls(&extension.id),
                devices,
            )
        };
        ExtensionView {
            status,
            registered_devices: devices,
            extension,
        }
    }

    pub async fn list_extensions(
        &self,
        principal: &Principal,
        kind: Option<ExtensionType>,
        status: Option<PresenceStatus>,
    ) -> ServiceResult<Vec<ExtensionView>> {
        principal.require(Scope::ExtensionsRead)?;
        let all = self.store.list_extensions(&principal.pbx_id).await?;
        Ok(all
            .into_iter()
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .map(|e| self.view(e))
            .filter(|v| status.is_none_or(|s| v.status == s))
            .collect())
    }

    pub async fn extension_stats(&self, principal: &Principal) -> ServiceResult<ExtensionStats> {
        let all = self.list_extensions(principal, None, None).await?;
        let count =
            |pred: &dyn Fn(&ExtensionView) -> bool| all.iter().filter(|v| pred(v)).count() as u32;
        Ok(ExtensionStats {
            total: all.len() as u32,
            by_type: ExtensionType::ALL
                .into_iter()
                .map(|t| (t, count(&|v| v.extension.kind == t)))
                .collect(),
            by_status: PresenceStatus::ALL
                .into_iter()
                .map(|s| (s, count(&|v| v.status == s)))
                .collect(),
            registered_devices: all.iter().map(|v| v.registered_devices).sum(),
        })
    }

    pub async fn get_extension(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ServiceResult<ExtensionView> {
        principal.require(Scope::ExtensionsRead)?;
        let ext = self
            .store
            .extension_by_id(&principal.pbx_id, id)
            .await?
            .ok_or(ServiceError::NotFound("extension"))?;
        Ok(self.view(ext))
    }

    pub async fn get_extension_by_number(
        &self,
        principal: &Principal,
        number: &str,
    ) -> ServiceResult<ExtensionView> {
        principal.require(Scope::ExtensionsRead)?;
        let ext = self
            .store
            .extension_by_number(&principal.pbx_id, number)
            .await?
            .ok_or(ServiceError::NotFound("extension"))?;
        Ok(self.view(ext))
    }

    /// Creates an extension and, for a `user` extension, provisions its SIP credentials
    /// (returned only here). Other types get a username but no password: nothing can
    /// register as them.
    pub async fn create_extension(
        &self,
        principal: &Principal,
        draft: ExtensionDraft,
    ) -> ServiceResult<CreatedExtension> {
        principal.require(Scope::ExtensionsWrite)?;
        let required = |f: &Field<String>, name: &'static str| match f {
            Field::Value(_) => Ok(()),
            _ => Err(ValidationError::new(name, "is required")),
        };
        required(&draft.number, "number")?;
        required(&draft.name, "name")?;
        let (mut changes, conference) = draft.into_changeset()?;
        let kind = match &changes.kind {
            Some(k) => ExtensionType::parse(k)?,
            None => ExtensionType::User,
        };
        conference.apply(kind, &mut changes)?;
        let pbx = self
            .store
            .pbx_by_id(&principal.pbx_id)
            .await?
            .ok_or(ServiceError::NotFound("pbx"))?;

        let number = changes.number.clone().unwrap_or_default();
        let now = now_ms();
        let mut row = ExtensionRow {
            id: crate::ids::resource_id("ext"),
            pbx_id: pbx.id.clone(),
            number: number.clone(),
            name: changes.name.clone().unwrap_or_default(),
            kind: changes.kind.clone().unwrap_or_else(|| "user".to_owned()),
            caller_id_name: changes.caller_id_name.clone().flatten(),
            caller_id_number: changes.caller_id_number.clone().flatten(),
            voicemail_enabled: changes.voicemail_enabled.unwrap_or(true),
            forwarding_number: changes.forwarding_number.clone().flatten(),
            forwarding_ring_timeout: changes
                .forwarding_ring_timeout
                .unwrap_or(i32::from(RingTimeout::DEFAULT.seconds())),
            manual_presence: changes.manual_presence.clone().flatten(),
            conference_pin: changes.conference_pin.clone().flatten(),
            max_participants: changes
                .max_participants
                .unwrap_or(i32::from(MaxParticipants::DEFAULT.get())),
            sip_username: String::new(),
            ha1_md5: String::new(),
            ha1_sha256: String::new(),
            created_at: now,
            updated_at: now,
        };
        // The database enforces this too (a CHECK constraint); asking first gives the
        // client the error before a username is drawn.
        if row.forwarding_number.as_deref() == Some(number.as_str()) {
            return Err(self_forwarding().into());
        }
        let password = (row.kind == ExtensionType::User.as_str()).then(crate::ids::sip_password);
        // A username collision (1 in 2^31 per pair) is retried with a fresh suffix.
        let mut attempts = 0;
        let extension = loop {
            row.sip_username = format!("{number}_{}", crate::ids::lower_alnum(6));
            if let Some(password) = &password {
                row.ha1_md5 = digest::ha1_md5(&row.sip_username, &pbx.sip_domain, password);
                row.ha1_sha256 = digest::ha1_sha256(&row.sip_username, &pbx.sip_domain, password);
            }
            match self.store.insert_extension(&row).await {
                Ok(ext) => break ext,
                Err(StoreError::Unique(what)) if what.contains("sip_username") && attempts < 3 => {
                    attempts += 1;
                }
                Err(e) => return Err(map_write_error(e, Some(&number))),
            }
        };
        let view = self.view(extension);
        self.bus.publish(Event::Extension(ExtensionChange {
            pbx_id: pbx.id.clone(),
            kind: ChangeKind::Created,
            extension: view.clone(),
            at: now,
        }));
        tracing::info!(extension.id = %view.extension.id, extension.number = %number, pbx.id = %pbx.id, "extension created");
        Ok(CreatedExtension {
            sip_credentials: password.map(|password| SipCredentials {
                username: view.extension.sip_username.clone(),
                password,
                domain: pbx.sip_domain,
            }),
            extension: view,
        })
    }

    /// Changes only the fields present in `draft`; publishes `extensionChanged` and,
    /// when the derived status moved, `presenceChanged`. An extension that is (or
    /// becomes) of a type other than `user` loses its SIP password and its devices.
    pub async fn update_extension(
        &self,
        principal: &Principal,
        id: &str,
        draft: ExtensionDraft,
    ) -> ServiceResult<ExtensionView> {
        principal.require(Scope::ExtensionsWrite)?;
        let (mut changes, conference) = draft.into_changeset()?;
        changes.updated_at = Some(now_ms());
        if changes
            .kind
            .as_deref()
            .is_some_and(|k| k != ExtensionType::User.as_str())
        {
            // In the same UPDATE as the type: no moment where a conference has a password.
            changes.ha1_md5 = Some(String::new());
            changes.ha1_sha256 = Some(String::new());
        }

        let _guard = self.locks.lock(id).await;
        // The conference rules depend on the type after the change: the one given, or
        // (read under the lock, so no other change slips in between) the stored one.
        let kind = match &changes.kind {
            Some(k) => Some(ExtensionType::parse(k)?),
            None if conference.pin
                || conference.max_participants
                || matches!(changes.manual_presence, Some(Some(_))) =>
            {
                Some(
                    self.store
                        .extension_by_id(&principal.pbx_id, id)
                        .await?
                        .ok_or(ServiceError::NotFound("extension"))?
                        .kind,
                )
            }
            None => None,
        };
        if let Some(kind) = kind {
            conference.apply(kind, &mut changes)?;
        }
        let (before, after) = match self
            .store
            .update_extension(&principal.pbx_id, id, &changes)
            .await
        {
            Ok(Some(pair)) => pair,
            Ok(None) => return Err(ServiceError::NotFound("extension")),
            Err(e) => return Err(map_write_error(e, changes.number.as_deref())),
        };
        self.accounts.invalidate(id);
        let at = after.updated_at;
        let old = self.view(before);
        let unregistered = if after.kind == ExtensionType::User {
            0
        } else {
            self.end_bindings(&after).await?
        };
        let new = self.view(after);
        if settings_changed(&old.extension, &new.extension) {
            self.bus.publish(Event::Extension(ExtensionChange {
                pbx_id: principal.pbx_id.clone(),
                kind: ChangeKind::Updated,
                extension: new.clone(),
                at,
            }));
        }
        if old.status != new.status {
            let cause = if unregistered > 0 {
                PresenceCause {
                    reason: Some("unregistered".to_owned()),
                    ..PresenceCause::simple(
                        CauseKind::Device,
                        format!(
                            "{unregistered} device(s) unregistered: a {} extension has no phones",
                            new.extension.kind.as_str()
                        ),
                    )
                }
            } else {
                let description = match new.extension.manual_presence {
                    Some(m) => format!("presence set to {}", m.as_str()),
                    None => "presence set to available".to_owned(),
                };
                PresenceCause::simple(CauseKind::Manual, description)
            };
            self.bus.publish(Event::Presence(PresenceChange {
                pbx_id: principal.pbx_id.clone(),
                extension: ExtensionRef::from(&new.extension),
                status: new.status,
                previous_status: Some(old.status),
                cause,
                at,
            }));
        }
        Ok(new)
    }

    pub async fn set_presence(
        &self,
        principal: &Principal,
        id: &str,
        setting: PresenceSetting,
    ) -> ServiceResult<ExtensionView> {
        let draft = ExtensionDraft {
            presence: Field::Value(setting),
            ..Default::default()
        };
        self.update_extension(principal, id, draft).await
    }

    pub async fn delete_extension(&self, principal: &Principal, id: &str) -> ServiceResult<()> {
        principal.require(Scope::ExtensionsWrite)?;
        let _guard = self.locks.lock(id).await;
        let ext = self
            .store
            .delete_extension(&principal.pbx_id, id)
            .await?
            .ok_or(ServiceError::NotFound("extension"))?;
        let view = self.view(ext);
        self.live.forget(id);
        self.bindings.remove_extension(id);
        self.accounts.invalidate(id);
        self.bus.publish(Event::Extension(ExtensionChange {
            pbx_id: principal.pbx_id.clone(),
            kind: ChangeKind::Deleted,
            extension: view,
            at: now_ms(),
        }));
        tracing::info!(extension.id = %id, pbx.id = %principal.pbx_id, "extension deleted");
        Ok(())
    }

    /// Issues a new SIP password; the old one stops working at once. Only `user`
    /// extensions have credentials: for any other type this is a conflict on `type`.
    pub async fn reset_sip_credentials(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ServiceResult<CreatedExtension> {
        principal.require(Scope::ExtensionsWrite)?;
        // Held so a concurrent change of type cannot slip between the check and the
        // write and leave a conference with a password.
        let _guard = self.locks.lock(id).await;
        let pbx = self
            .store
            .pbx_by_id(&principal.pbx_id)
            .await?
            .ok_or(ServiceError::NotFound("pbx"))?;
        let existing = self
            .store
            .extension_by_id(&pbx.id, id)
            .await?
            .ok_or(ServiceError::NotFound("extension"))?;
        if existing.kind != ExtensionType::User {
            return Err(no_credentials(existing.kind));
        }
        let password = crate::ids::sip_password();
        let user = &existing.sip_username;
        let ext = self
            .store
            .set_sip_secrets(
                &pbx.id,
                id,
                &digest::ha1_md5(user, &pbx.sip_domain, &password),
                &digest::ha1_sha256(user, &pbx.sip_domain, &password),
                now_ms(),
            )
            .await?
            .ok_or(ServiceError::NotFound("extension"))?;
        self.accounts.invalidate(id);
        tracing::info!(extension.id = %id, pbx.id = %pbx.id, "SIP credentials rotated");
        let view = self.view(ext);
        Ok(CreatedExtension {
            sip_credentials: Some(SipCredentials {
                username: view.extension.sip_username.clone(),
                password,
                domain: pbx.sip_domain,
            }),
            extension: view,
        })
    }
}

/// What rotating credentials of a non-user extension answers: 409 on `type` (the
/// request is fine, the extension's type is what stands in the way).
fn no_credentials(kind: ExtensionType) -> ServiceError {
    ServiceError::Conflict {
        field: "type",
        message: format!(
            "A {} extension has no SIP credentials: only user extensions register phones",
            kind.as_str()
        ),
    }
}

/// Whether anything but presence (and the update time) differs.
fn settings_changed(old: &Extension, new: &Extension) -> bool {
    let neutral = |e: &Extension| Extension {
        manual_presence: None,
        updated_at: 0,
        ..e.clone()
    };
    neutral(old) != neutral(new)
}

/// Constraint violations become the client's error; anything else stays internal.
fn map_write_error(err: StoreError, number: Option<&str>) -> ServiceError {
    match err {
        StoreError::Unique(what) if what.contains("number") => {
            number_conflict(number.unwrap_or_default())
        }
        StoreError::Check(what) if what.contains("self_forwarding") => self_forwarding().into(),
        other => other.into(),
    }
}

fn self_forwarding() -> ValidationError {
    ValidationError::new("forwardingNumber", "cannot be the extension's own number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_fields_map_to_changeset_semantics() {
        let draft = ExtensionDraft {
            name: Field::Value(" Ann ".into()),
            caller_id_name: Field::Null,
            forwarding_ring_timeout: Field::Value(30),
            presence: Field::Value(PresenceSetting::Available),
            ..Default::default()
        };
        let (cs, _) = draft.into_changeset().unwrap();
        assert_eq!(cs.name.as_deref(), Some("Ann"));
        assert_eq!(cs.caller_id_name, Some(None));
        assert_eq!(cs.caller_id_number, None);
        assert_eq!(cs.forwarding_ring_timeout, Some(30));
        assert_eq!(cs.manual_presence, Some(None));
    }

    #[test]
    fn conference_settings_belong_to_conferences_and_presence_does_not() {
        let draft = |pin: Field<String>, max: Field<i64>, presence: Field<PresenceSetting>| {
            ExtensionDraft {
                conference_pin: pin,
                max_participants: max,
                presence,
                ..Default::default()
            }
            .into_changeset()
            .unwrap()
        };
        let (mut cs, input) = draft(Field::Value("0815".into()), Field::Absent, Field::Absent);
        assert_eq!(cs.conference_pin, Some(Some("0815".into())));
        assert_eq!(
            input
                .apply(ExtensionType::User, &mut cs.clone())
                .unwrap_err()
                .field,
            "conferencePin"
        );
        input.apply(ExtensionType::Conference, &mut cs).unwrap();

        let (mut cs, input) = draft(Field::Absent, Field::Value(10), Field::Absent);
        assert_eq!(
            input
                .apply(ExtensionType::Paging, &mut cs)
                .unwrap_err()
                .field,
            "maxParticipants"
        );
        let (mut cs, input) = draft(Field::Null, Field::Null, Field::Absent);
        input.apply(ExtensionType::User, &mut cs).unwrap();
        assert_eq!(cs.max_participants, Some(50), "null restores the default");

        let (mut cs, input) = draft(
            Field::Absent,
            Field::Absent,
            Field::Value(PresenceSetting::Away),
        );
        assert_eq!(
            input
                .apply(ExtensionType::Conference, &mut cs)
                .unwrap_err()
                .field,
            "presence"
        );

        // A change of type clears what the new type cannot have.
        let mut to_user = ExtensionChangeset {
            kind: Some("user".into()),
            ..Default::default()
        };
        ConferenceInput::default()
            .apply(ExtensionType::User, &mut to_user)
            .unwrap();
        assert_eq!(
            (to_user.conference_pin, to_user.max_participants),
            (Some(None), Some(50))
        );
        let mut to_room = ExtensionChangeset {
            kind: Some("conference".into()),
            ..Default::default()
        };
        ConferenceInput::default()
            .apply(ExtensionType::Conference, &mut to_room)
            .unwrap();
        assert_eq!(to_room.manual_presence, Some(None));
    }

    #[test]
    fn null_on_a_required_field_names_the_field() {
        let draft = ExtensionDraft {
            voicemail_enabled: Field::Null,
            ..Default::default()
        };
        assert_eq!(
            draft.into_changeset().unwrap_err().field,
            "voicemailEnabled"
        );
    }
}
