//! Opt-out and opt-in keywords in inbound WhatsApp messages. A customer who writes "STOP"
//! has withdrawn consent, whether or not an agent reads it: the contact's WhatsApp consent
//! becomes `opted_out` in the same transaction as the message, so the very next send is
//! refused (`contact_opted_out`). "START" gives consent back. The words are the ones
//! carriers standardised for SMS (CTIA), which customers also use on WhatsApp; a message
//! counts only when it is the keyword alone, so "please don't stop the service" does not.

use sqlx::SqliteConnection;

use super::MessagingError;

const OPT_OUT: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const OPT_IN: &[&str] = &["START", "UNSTOP"];

/// The consent status a message's text asks for, if it is a keyword.
pub fn consent_asked(text: &str) -> Option<&'static str> {
    // Keywords arrive as "Stop", "stop.", " STOP! " from phones' keyboards.
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_uppercase();
    if OPT_OUT.contains(&word.as_str()) {
        Some("opted_out")
    } else if OPT_IN.contains(&word.as_str()) {
        Some("opted_in")
    } else {
        None
    }
}

/// Applies a keyword in an inbound WhatsApp message from `contact_id`; true if it was one.
pub async fn apply(
    conn: &mut SqliteConnection,
    org_id: &str,
    contact_id: &str,
    text: Option<&str>,
) -> Result<bool, MessagingError> {
    let Some(status) = text.and_then(consent_asked) else {
        return Ok(false);
    };
    crate::crm::contacts::set_consent(
        conn,
        org_id,
        contact_id,
        "whatsapp",
        status,
        Some("whatsapp keyword"),
    )
    .await
    .map_err(|e| match e {
        crate::crm::CrmError::Db(db) => MessagingError::Db(db),
        other => MessagingError::invalid("consent", other.to_string()),
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::consent_asked;

    #[test]
    fn only_a_keyword_alone_counts() {
        for text in ["STOP", "stop", " Stop! ", "unsubscribe.", "StopAll"] {
            assert_eq!(consent_asked(text), Some("opted_out"), "{text}");
        }
        for text in ["START", "start", "Unstop"] {
            assert_eq!(consent_asked(text), Some("opted_in"), "{text}");
        }
        for text in [
            "please don't stop the service",
            "stopping by later",
            "",
            "S T O P",
            "🛑",
        ] {
            assert_eq!(consent_asked(text), None, "{text}");
        }
    }
}
