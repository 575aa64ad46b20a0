//! Voicemail emails: a new message goes to its mailbox's notify address, with the
//! recording attached, through the relay `--smtp-url` names.

use crate::clock::rfc3339;
use crate::domain::{Extension, VoicemailMessage};
use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// The relay voicemail emails go through, from a URL lettre reads:
/// `smtp://host[:port]` (plain SMTP, port 25), `smtp://host?tls=required` (STARTTLS,
/// port 587), `smtps://host` (TLS, port 465); `user:password@host` logs in.
#[derive(Clone, Debug)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Parsed when an email is sent: a bad address costs that email, not the start.
    from: String,
}

/// Why `--smtp-url` was refused.
#[derive(Debug, thiserror::Error)]
pub enum SmtpUrlError {
    #[error(transparent)]
    Lettre(#[from] lettre::transport::smtp::Error),
    /// lettre would look the bracketed literal up as a host name and never connect.
    #[error("an IPv6 relay must be named by a host name, not a [literal]")]
    Ipv6Literal,
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Self, SmtpUrlError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build();
        if matches!(
            url::Url::parse(url).map(|u| u.host().map(|h| h.to_owned())),
            Ok(Some(url::Host::Ipv6(_)))
        ) {
            return Err(SmtpUrlError::Ipv6Literal);
        }
        Ok(Self {
            transport,
            from: from.to_owned(),
        })
    }

    /// Emails `message` of `ext`'s mailbox to `to` in the background; a failure is
    /// logged.
    pub fn send_voicemail(
        &self,
        ext: &Extension,
        message: &VoicemailMessage,
        to: &str,
        wav: Vec<u8>,
    ) {
        let caller = match &message.caller_name {
            Some(n) => format!("{n} <{}>", message.caller_number),
            None => message.caller_number.clone(),
        };
        let seconds = (message.duration_ms + 500) / 1000;
        let subject = format!(
            "New voicemail for {} from {caller} ({seconds} s)",
            ext.number
        );
        let body = format!(
            "You have a new voicemail.\n\nFor:      {} {}\nFrom:     {caller}\nReceived: {}\nDuration: {seconds} s\n\nThe recording is attached.\n",
            ext.number,
            ext.name,
            rfc3339(message.created_at)
        );
        let mailer = self.clone();
        let (to, id) = (to.to_owned(), message.id.clone());
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&to, &subject, &body, &id, wav).await {
                tracing::warn!(error = %e, voicemail.id = %id, "voicemail email not sent");
            }
        });
    }

    async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        id: &str,
        wav: Vec<u8>,
    ) -> anyhow::Result<()> {
        let email = Message::builder()
            .from(self.from.parse()?)
            .to(to.parse()?)
            .subject(subject)
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(body.to_owned()))
                    .singlepart(
                        Attachment::new(format!("{id}.wav"))
                            .body(wav, ContentType::parse("audio/wav")?),
                    ),
            )?;
        self.transport.send(email).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_a_relay() {
        for good in [
            "smtp://mail.lan",
            "smtp://127.0.0.1:2525/",
            "smtp://mail.lan?tls=required",
            "smtps://mail.lan",
            "smtp://user:secret@mail.lan:587",
        ] {
            assert!(Mailer::new(good, "vm@x.org").is_ok(), "{good}");
        }
        for bad in [
            "mail.lan",
            "http://mail.lan",
            "smtp://",
            "smtp://x:port",
            "smtp://[::1",
            "smtp://mail.lan?tls=sometimes",
        ] {
            assert!(Mailer::new(bad, "vm@x.org").is_err(), "{bad}");
        }
        assert!(matches!(
            Mailer::new("smtp://[::1]:26", "vm@x.org"),
            Err(SmtpUrlError::Ipv6Literal)
        ));
    }
}
