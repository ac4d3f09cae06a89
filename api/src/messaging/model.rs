//! The vocabulary of messaging: statuses, priorities, directions, senders, content types and
//! channel kinds, each with its one spelling in the database and the API.

/// A closed set of lowercase names stored as TEXT. `parse` refuses anything else, so input
/// never reaches a CHECK constraint as a 500.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a conversation stands in the inbox workflow.
    ConversationStatus {
        Open => "open",
        Pending => "pending",
        Resolved => "resolved",
        Snoozed => "snoozed",
    }
);

string_enum!(Priority {
    None => "none",
    Low => "low",
    Medium => "medium",
    High => "high",
    Urgent => "urgent",
});

string_enum!(Direction {
    Inbound => "inbound",
    Outbound => "outbound",
});

string_enum!(
    /// Who wrote a message: the contact, an agent (users.id), an API key, or callscope itself.
    SenderType {
        Contact => "contact",
        User => "user",
        ApiKey => "api_key",
        System => "system",
    }
);

string_enum!(ContentType {
    Text => "text",
    Image => "image",
    Audio => "audio",
    Video => "video",
    Document => "document",
    Sticker => "sticker",
    Location => "location",
    Contacts => "contacts",
    Interactive => "interactive",
    Button => "button",
    Reaction => "reaction",
    Template => "template",
    Unsupported => "unsupported",
});

string_enum!(
    /// Delivery state of a message. Inbound messages are `received`; outbound ones move
    /// forward only: queued → sent → delivered → read, or failed before delivery.
    DeliveryStatus {
        Received => "received",
        Queued => "queued",
        Sent => "sent",
        Delivered => "delivered",
        Read => "read",
        Failed => "failed",
    }
);

impl DeliveryStatus {
    /// Whether a report of `next` may replace `self`. Reports arrive out of order (Meta may
    /// send `read` before `delivered`) and are replayed; a status never moves backwards, and
    /// `failed` is only believed before the message was delivered.
    pub fn accepts(self, next: DeliveryStatus) -> bool {
        fn rank(s: DeliveryStatus) -> u8 {
            match s {
                DeliveryStatus::Received | DeliveryStatus::Queued => 0,
                DeliveryStatus::Sent => 1,
                DeliveryStatus::Delivered => 2,
                DeliveryStatus::Read => 3,
                DeliveryStatus::Failed => 4,
            }
        }
        match (self, next) {
            (DeliveryStatus::Received, _) | (_, DeliveryStatus::Received) => false,
            (DeliveryStatus::Failed, _) => false,
            (current, DeliveryStatus::Failed) => rank(current) < 2,
            (current, next) => rank(next) > rank(current),
        }
    }
}

string_enum!(ChannelKind {
    Api => "api",
    Whatsapp => "whatsapp",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ConversationStatus::ALL {
            assert_eq!(ConversationStatus::parse(s.as_str()), Some(*s));
        }
        for s in ContentType::ALL {
            assert_eq!(ContentType::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Priority::parse("URGENT"), None);
        assert_eq!(ChannelKind::parse("voice"), None);
    }

    #[test]
    fn delivery_status_only_moves_forward() {
        use DeliveryStatus::*;
        assert!(Queued.accepts(Sent));
        assert!(Sent.accepts(Read));
        assert!(!Read.accepts(Delivered));
        assert!(!Delivered.accepts(Delivered));
        assert!(Sent.accepts(Failed));
        assert!(Queued.accepts(Failed));
        assert!(!Delivered.accepts(Failed));
        assert!(!Failed.accepts(Sent));
        assert!(!Received.accepts(Read));
    }
}
