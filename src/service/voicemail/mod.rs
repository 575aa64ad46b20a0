//! Voicemail use cases: mailboxes (one per extension with voicemail on), messages (a
//! row and a WAV file, written so that a crash never leaves a row without its file),
//! greetings, retention, and the events that drive MWI. The files are [`files`]'s, the
//! emails [`email`]'s, the rules of a mailbox's settings the domain's.

mod email;
mod files;

pub use email::{Mailer, SmtpUrlError};
pub use files::{AudioFileError, AudioFiles};

use super::{Field, ServiceError, ServiceResult, Services};
use crate::auth::{Principal, Scope};
use crate::clock::now_ms;
use crate::domain::{
    DEFAULT_MAX_MESSAGE_SECONDS, DEFAULT_RETENTION_DAYS, EmailAddress, Extension, ExtensionRef,
    GreetingType, MAX_GREETING_SECONDS, Mailbox, MaxMessageSeconds, Pin, RetentionDays,
    ValidationError, VoicemailMessage, mailbox_id, mailbox_number,
};
use crate::events::{Event, VoicemailChange, VoicemailChangeKind};
use crate::media::audio;
use crate::store::voicemail::{MailboxRow, MessageRow};
use std::collections::HashSet;
use std::path::PathBuf;

/// Changes to a mailbox's settings; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default)]
pub struct MailboxDraft {
    pub notify_email: Field<String>,
    pub pin: Field<String>,
    pub max_message_seconds: Field<i64>,
    pub retention_days: Field<i64>,
    /// Only `default` (drops the custom greeting); a custom one is uploaded.
    pub greeting_type: Field<GreetingType>,
}

fn default_row(ext: &Extension) -> MailboxRow {
    MailboxRow {
        extension_id: ext.id.clone(),
        pbx_id: ext.pbx_id.clone(),
        greeting_file: None,
        notify_email: None,
        pin_hash: None,
        max_message_seconds: DEFAULT_MAX_MESSAGE_SECONDS as i32,
        retention_days: DEFAULT_RETENTION_DAYS as i32,
        updated_at: now_ms(),
    }
}

impl Services {
    fn message_of(&self, row: MessageRow, number: &str) -> VoicemailMessage {
        VoicemailMessage {
            id: row.id,
            mailbox_id: mailbox_id(number),
            extension_id: row.extension_id,
            caller_number: row.caller_number,
            caller_name: row.caller_name,
            duration_ms: row.duration_ms,
            created_at: row.created_at,
            heard: row.heard_at.is_some(),
        }
    }

    async fn mailbox_of(&self, ext: &Extension, row: Option<MailboxRow>) -> ServiceResult<Mailbox> {
        let row = row.unwrap_or_else(|| default_row(ext));
        let messages = self.store.messages(&ext.pbx_id, Some(&ext.id)).await?;
        Ok(Mailbox {
            id: mailbox_id(&ext.number),
            pbx_id: ext.pbx_id.clone(),
            extension_id: ext.id.clone(),
            extension_number: ext.number.clone(),
            extension_name: ext.name.clone(),
            message_count: messages.len() as u32,
            new_messages: messages.iter().filter(|m| m.heard_at.is_none()).count() as u32,
            greeting: if row.greeting_file.is_some() {
                GreetingType::Custom
            } else {
                GreetingType::Default
            },
            notify_email: row.notify_email,
            pin_set: row.pin_hash.is_some(),
            max_message_seconds: row.max_message_seconds.max(1) as u32,
            retention_days: row.retention_days.max(1) as u32,
        })
    }

    /// The extension a mailbox id (`vm_<number>`) belongs to, in the caller's PBX.
    async fn mailbox_extension(&self, principal: &Principal, id: &str) -> ServiceResult<Extension> {
        let number = mailbox_number(id).ok_or(ServiceError::NotFound("mailbox"))?;
        match self
            .store
            .extension_by_number(&principal.pbx_id, number)
            .await?
        {
            Some(ext) if ext.voicemail_enabled => Ok(ext),
            _ => Err(ServiceError::NotFound("mailbox")),
        }
    }

    pub async fn list_mailboxes(&self, principal: &Principal) -> ServiceResult<Vec<Mailbox>> {
        principal.require(Scope::VoicemailRead)?;
        let rows = self.store.mailboxes(&principal.pbx_id).await?;
        let mut out = Vec::new();
        for ext in self.store.list_extensions(&principal.pbx_id).await? {
            if ext.voicemail_enabled {
                let row = rows.iter().find(|r| r.extension_id == ext.id).cloned();
                out.push(self.mailbox_of(&ext, row).await?);
            }
        }
        Ok(out)
    }

    pub async fn get_mailbox(&self, principal: &Principal, id: &str) -> ServiceResult<Mailbox> {
        principal.require(Scope::VoicemailRead)?;
        let ext = self.mailbox_extension(principal, id).await?;
        let row = self.store.mailbox(&ext.id).await?;
        self.mailbox_of(&ext, row).await
    }

    pub async fn update_mailbox(
        &self,
        principal: &Principal,
        id: &str,
        draft: MailboxDraft,
    ) -> ServiceResult<Mailbox> {
        principal.require(Scope::VoicemailWrite)?;
        let ext = self.mailbox_extension(principal, id).await?;
        let mut row = self
            .store
            .mailbox(&ext.id)
            .await?
            .unwrap_or_else(|| default_row(&ext));
        match draft.notify_email {
            Field::Absent => {}
            Field::Null => row.notify_email = None,
            Field::Value(v) => {
                row.notify_email = Some(EmailAddress::parse("notifyEmail", &v)?.into_inner());
            }
        }
        match draft.pin {
            Field::Absent => {}
            Field::Null => row.pin_hash = None,
            Field::Value(v) => {
                row.pin_hash = Some(Pin::parse(&v)?.hash());
            }
        }
        let max_seconds = match draft.max_message_seconds {
            Field::Absent => None,
            Field::Null => Some(MaxMessageSeconds::DEFAULT),
            Field::Value(v) => Some(MaxMessageSeconds::parse(v)?),
        };
        if let Some(max) = max_seconds {
            row.max_message_seconds = max.seconds() as i32;
        }
        let retention = match draft.retention_days {
            Field::Absent => None,
            Field::Null => Some(RetentionDays::DEFAULT),
            Field::Value(v) => Some(RetentionDays::parse(v)?),
        };
        if let Some(days) = retention {
            row.retention_days = days.days() as i32;
        }
        let old_greeting = match draft.greeting_type {
            Field::Absent => None,
            Field::Value(GreetingType::Default) => row.greeting_file.take(),
            Field::Value(GreetingType::Custom) => {
                return Err(ValidationError::new(
                    "greetingType",
                    "a custom greeting is set by uploading it (PUT …/greeting)",
                )
                .into());
            }
            Field::Null => {
                return Err(
                    ValidationError::new("greetingType", "must be default or custom").into(),
                );
            }
        };
        row.updated_at = now_ms();
        self.store.save_mailbox(&row).await?;
        if let Some(file) = old_greeting {
            self.audio_files.remove(&file).await;
        }
        self.mailbox_of(&ext, Some(row)).await
    }

    /// Replaces the greeting with an uploaded WAV (any PCM or float WAV; stored as 8 kHz
    /// mono). Anything else is [`ServiceError::BadAudio`].
    pub async fn set_greeting(
        &self,
        principal: &Principal,
        id: &str,
        wav: &[u8],
    ) -> ServiceResult<Mailbox> {
        principal.require(Scope::VoicemailWrite)?;
        let ext = self.mailbox_extension(principal, id).await?;
        let samples = audio::decode_wav(wav, MAX_GREETING_SECONDS)?;
        let relative = format!(
            "{}/{}/greeting-{}.wav",
            ext.pbx_id,
            ext.id,
            crate::ids::lower_alnum(8)
        );
        self.audio_files
            .write(&relative, audio::encode_wav(&samples))
            .await?;
        let mut row = self
            .store
            .mailbox(&ext.id)
            .await?
            .unwrap_or_else(|| default_row(&ext));
        let old = row.greeting_file.replace(relative);
        row.updated_at = now_ms();
        self.store.save_mailbox(&row).await?;
        if let Some(old) = old {
            self.audio_files.remove(&old).await;
        }
        self.mailbox_of(&ext, Some(row)).await
    }

    /// What a caller hears: the custom greeting, else the default prompt; then a beep.
    pub async fn greeting_for(&self, ext: &Extension) -> Vec<i16> {
        let custom = match self.store.mailbox(&ext.id).await {
            Ok(Some(MailboxRow {
                greeting_file: Some(file),
                ..
            })) => self.audio_files.read(&file).await.ok(),
            _ => None,
        };
        let mut samples = custom
            .and_then(|bytes| audio::decode_wav(&bytes, MAX_GREETING_SECONDS).ok())
            .or_else(|| audio::decode_wav(audio::DEFAULT_GREETING, MAX_GREETING_SECONDS).ok())
            .unwrap_or_default();
        samples.extend(std::iter::repeat_n(0, 1600));
        samples.extend(audio::beep(400));
        samples
    }

    /// The longest message an extension's mailbox takes.
    pub async fn max_message_seconds(&self, ext: &Extension) -> u32 {
        match self.store.mailbox(&ext.id).await {
            Ok(Some(row)) => row.max_message_seconds.max(1) as u32,
            _ => DEFAULT_MAX_MESSAGE_SECONDS,
        }
    }

    pub async fn list_messages(
        &self,
        principal: &Principal,
        mailbox: &str,
    ) -> ServiceResult<Vec<VoicemailMessage>> {
        principal.require(Scope::VoicemailRead)?;
        let ext = self.mailbox_extension(principal, mailbox).await?;
        let rows = self.store.messages(&ext.pbx_id, Some(&ext.id)).await?;
        Ok(rows
            .into_iter()
            .map(|r| self.message_of(r, &ext.number))
            .collect())
    }

    /// A message and its audio file's path.
    pub async fn message_audio(
        &self,
        principal: &Principal,
        mailbox: &str,
        id: &str,
    ) -> ServiceResult<(VoicemailMessage, PathBuf)> {
        principal.require(Scope::VoicemailRead)?;
        let (ext, row) = self.mailbox_message(principal, mailbox, id).await?;
        let path = self.audio_files.path(&row.audio_file);
        Ok((self.message_of(row, &ext.number), path))
    }

    /// A message of a mailbox in the caller's PBX, with the mailbox's extension.
    async fn mailbox_message(
        &self,
        principal: &Principal,
        mailbox: &str,
        id: &str,
    ) -> ServiceResult<(Extension, MessageRow)> {
        let ext = self.mailbox_extension(principal, mailbox).await?;
        let row = self
            .store
            .message(&principal.pbx_id, id)
            .await?
            .filter(|r| r.extension_id == ext.id)
            .ok_or(ServiceError::NotFound("message"))?;
        Ok((ext, row))
    }

    async fn counts(&self, ext: &Extension) -> ServiceResult<(u32, u32)> {
        let rows = self.store.messages(&ext.pbx_id, Some(&ext.id)).await?;
        let new = rows.iter().filter(|m| m.heard_at.is_none()).count() as u32;
        Ok((new, rows.len() as u32 - new))
    }

    async fn announce(
        &self,
        ext: &Extension,
        kind: VoicemailChangeKind,
        message: Option<VoicemailMessage>,
    ) -> ServiceResult<()> {
        let (new_messages, old_messages) = self.counts(ext).await?;
        self.bus.publish(Event::Voicemail(Box::new(VoicemailChange {
            pbx_id: ext.pbx_id.clone(),
            extension: ExtensionRef::from(ext),
            mailbox_id: mailbox_id(&ext.number),
            kind,
            message,
            new_messages,
            old_messages,
            at: now_ms(),
        })));
        Ok(())
    }

    pub async fn mark_message(
        &self,
        principal: &Principal,
        mailbox: &str,
        id: &str,
        heard: bool,
    ) -> ServiceResult<VoicemailMessage> {
        principal.require(Scope::VoicemailWrite)?;
        let (ext, row) = self.mailbox_message(principal, mailbox, id).await?;
        let changed = row.heard_at.is_some() != heard;
        let heard_at = heard.then(|| row.heard_at.unwrap_or_else(now_ms));
        self.store.set_message_heard(id, heard_at).await?;
        let message = self.message_of(MessageRow { heard_at, ..row }, &ext.number);
        if changed {
            let kind = if heard {
                VoicemailChangeKind::Heard
            } else {
                VoicemailChangeKind::Unheard
            };
            self.announce(&ext, kind, Some(message.clone())).await?;
        }
        Ok(message)
    }

    pub async fn delete_message(
        &self,
        principal: &Principal,
        mailbox: &str,
        id: &str,
    ) -> ServiceResult<()> {
        principal.require(Scope::VoicemailWrite)?;
        let (ext, row) = self.mailbox_message(principal, mailbox, id).await?;
        // Row first: a crash in between leaves an orphan file, which start-up removes.
        self.store.delete_message_row(id).await?;
        self.audio_files.remove(&row.audio_file).await;
        let message = self.message_of(row, &ext.number);
        self.announce(&ext, VoicemailChangeKind::Deleted, Some(message))
            .await
    }

    /// Stores a recorded message: the WAV first (atomically), then its row; a crash in
    /// between leaves an orphan file, which start-up removes.
    pub async fn deposit(
        &self,
        ext: &Extension,
        caller_number: &str,
        caller_name: Option<&str>,
        samples: Vec<i16>,
    ) -> ServiceResult<VoicemailMessage> {
        let id = crate::ids::resource_id("msg");
        let relative = format!("{}/{}/{id}.wav", ext.pbx_id, ext.id);
        let duration_ms = (samples.len() as i64 * 1000) / i64::from(audio::RATE);
        let bytes = audio::encode_wav(&samples);
        let email_copy = bytes.clone();
        self.audio_files.write(&relative, bytes).await?;
        let row = MessageRow {
            id,
            pbx_id: ext.pbx_id.clone(),
            extension_id: ext.id.clone(),
            caller_number: caller_number.to_owned(),
            caller_name: caller_name.map(str::to_owned),
            duration_ms,
            created_at: now_ms(),
            heard_at: None,
            audio_file: relative,
        };
        if let Err(e) = self.store.insert_message(&row).await {
            self.audio_files.remove(&row.audio_file).await;
            return Err(e.into());
        }
        let message = self.message_of(row, &ext.number);
        tracing::info!(extension.number = %ext.number, voicemail.id = %message.id, duration_ms, "voicemail stored");
        self.announce(ext, VoicemailChangeKind::Deposited, Some(message.clone()))
            .await?;
        if let Some(mailer) = &self.config.mailer
            && let Ok(Some(MailboxRow {
                notify_email: Some(to),
                ..
            })) = self.store.mailbox(&ext.id).await
        {
            mailer.send_voicemail(ext, &message, &to, email_copy);
        }
        Ok(message)
    }

    /// Deletes messages older than their mailbox's retention. Run hourly.
    pub async fn purge_voicemail(&self) -> ServiceResult<usize> {
        let mailboxes = self.store.all_mailboxes().await?;
        let now = now_ms();
        let mut purged = 0;
        for row in self.store.all_messages().await? {
            let days = mailboxes
                .iter()
                .find(|m| m.extension_id == row.extension_id)
                .map_or(DEFAULT_RETENTION_DAYS as i64, |m| {
                    i64::from(m.retention_days)
                });
            if row.created_at < now - days * 24 * 3600 * 1000 {
                self.store.delete_message_row(&row.id).await?;
                self.audio_files.remove(&row.audio_file).await;
                purged += 1;
                if let Some(ext) = self
                    .store
                    .extension_by_id(&row.pbx_id, &row.extension_id)
                    .await?
                {
                    let number = ext.number.clone();
                    self.announce(
                        &ext,
                        VoicemailChangeKind::Purged,
                        Some(self.message_of(row, &number)),
                    )
                    .await?;
                }
            }
        }
        Ok(purged)
    }

    /// At start: files without a row (a crash between file and row, or a deleted
    /// extension) are removed, and rows whose file is gone are dropped. Returns how
    /// many files and how many rows went.
    pub async fn reconcile_voicemail(&self) -> ServiceResult<(usize, usize)> {
        let rows = self.store.all_messages().await?;
        let mut dropped_rows = 0;
        for row in &rows {
            if !self.audio_files.exists(&row.audio_file) {
                self.store.delete_message_row(&row.id).await?;
                dropped_rows += 1;
            }
        }
        let mut keep: HashSet<String> = rows.into_iter().map(|r| r.audio_file).collect();
        for m in self.store.all_mailboxes().await? {
            keep.extend(m.greeting_file);
        }
        let removed = self.audio_files.remove_all_but(keep).await;
        Ok((removed, dropped_rows))
    }

    /// New and old message counts of an extension by id ((0, 0) without voicemail).
    pub async fn mailbox_counts(
        &self,
        pbx_id: &str,
        extension_id: &str,
    ) -> ServiceResult<(u32, u32)> {
        match self.store.extension_by_id(pbx_id, extension_id).await? {
            Some(ext) => self.message_counts(&ext).await,
            None => Ok((0, 0)),
        }
    }

    /// New and old message counts of an extension (for MWI).
    pub async fn message_counts(&self, ext: &Extension) -> ServiceResult<(u32, u32)> {
        if !ext.voicemail_enabled {
            return Ok((0, 0));
        }
        self.counts(ext).await
    }
}
