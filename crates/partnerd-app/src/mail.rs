//! Outgoing email. Emails are queued in the outbox by the change that needs
//! them (same transaction) and sent by the `send_email` job through SMTP.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use partnerd_store::{NewEmail, OutboxEmail};

use crate::config::SmtpConfig;
use crate::{App, AppError, AppResult};

/// An SMTP client (lettre, pooled connections).
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> AppResult<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| AppError::Internal(format!("smtp.from {:?}: {e}", config.from)))?;
        let builder = match config.security.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
        }
        .map_err(|e| AppError::Internal(format!("smtp: {e}")))?;
        let mut builder = builder
            .port(config.port)
            .timeout(Some(std::time::Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, email: &OutboxEmail) -> Result<(), String> {
        let to: Mailbox = email
            .to_address
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .body(email.body.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl App {
    /// An email ready to queue: sent by SMTP when configured, otherwise kept
    /// for the admin console's Outbox.
    pub fn email(&self, to: &str, subject: impl Into<String>, body: impl Into<String>) -> NewEmail {
        NewEmail {
            to: to.to_owned(),
            subject: subject.into(),
            body: body.into(),
            send: self.mailer.is_some(),
            created_at: self.now(),
            partner_id: None,
        }
    }
}
