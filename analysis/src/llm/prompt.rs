//! Prompts for an OpenAI-compatible chat model. Each asks for a small JSON answer the
//! parsers in `parse` read; the transcript is given as time-stamped, role-tagged lines.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::Turn;

/// A system and a user message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

/// Most transcript characters put in a prompt: keeps a long call within a small model's
/// context window (about 8k tokens).
pub const MAX_TRANSCRIPT_CHARS: usize = 24_000;

/// Shortest part of a cut line worth giving to the model.
const MIN_PARTIAL_LINE_CHARS: usize = 20;

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// The transcript as lines `#<turn> [mm:ss] <role>: <text>`, cut to `max_chars` with a
/// marker saying so. Turns without text are left out.
pub fn transcript_for_prompt(turns: &[Turn], max_chars: usize) -> String {
    let mut out = String::new();
    let mut used = 0usize;
    for t in turns.iter().filter(|t| !t.text.trim().is_empty()) {
        let line = format!(
            "#{} [{}] {}: {}\n",
            t.index,
            clock(t.start_ms),
            t.role.as_str(),
            t.text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        let len = line.chars().count();
        if used + len > max_chars {
            // A long turn is cut rather than dropped whole when a useful part fits.
            let room = max_chars.saturating_sub(used);
            if room >= MIN_PARTIAL_LINE_CHARS {
                out.extend(line.trim_end().chars().take(room));
                out.push('\n');
            }
            out.push_str("[… rest of the transcript left out …]\n");
            break;
        }
        used += len;
        out.push_str(&line);
    }
    out
}

const TRANSCRIPT_NOTE: &str = "The transcript lines are `#<turn> [mm:ss] <role>: <text>`; \
roles are agent, customer or unknown. Use only what the transcript says.";

pub fn summary_prompt(turns: &[Turn]) -> Prompt {
    Prompt {
        system: format!(
            "You summarise customer-service phone calls for quality reviewers. {TRANSCRIPT_NOTE} \
Answer with one JSON object and nothing else: {{\"summary\": \"3 to 5 sentences\", \
\"reason_for_call\": \"one line\", \"resolution\": \"one line\"}}."
        ),
        user: transcript_for_prompt(turns, MAX_TRANSCRIPT_CHARS),
    }
}

pub fn action_items_prompt(turns: &[Turn], call_start: DateTime<Utc>) -> Prompt {
    Prompt {
        system: format!(
            "You list the action items of a customer-service phone call: what someone committed \
to do after the call, or was asked to do. {TRANSCRIPT_NOTE} The call started on {} ({}). \
Answer with one JSON array and nothing else; each item is {{\"owner\": \"agent\"|\"customer\", \
\"kind\": \"commitment\"|\"request\", \"text\": \"the words as said\", \"turn\": <turn number>, \
\"due\": \"YYYY-MM-DD\" or null, \"due_phrase\": \"the words that gave the date\" or null}}. \
Answer [] when there are none.",
            call_start.format("%Y-%m-%d"),
            call_start.format("%A"),
        ),
        user: transcript_for_prompt(turns, MAX_TRANSCRIPT_CHARS),
    }
}

pub fn resolution_prompt(turns: &[Turn]) -> Prompt {
    Prompt {
        system: format!(
            "You judge whether the customer's issue in a phone call was resolved. {TRANSCRIPT_NOTE} \
Answer with one JSON object and nothing else: {{\"resolution_score\": <number from 0 to 1>}}, \
where 1 means fully resolved during the call and 0 means not resolved at all."
        ),
        user: transcript_for_prompt(turns, MAX_TRANSCRIPT_CHARS),
    }
}

/// Asks whether `sentence` means the same as the tracker's example sentences (a second
/// opinion on an embedding match).
pub fn smart_tracker_prompt(tracker_name: &str, examples: &[String], sentence: &str) -> Prompt {
    let examples: String = examples
        .iter()
        .take(20)
        .map(|e| format!("- {}\n", e.trim()))
        .collect();
    Prompt {
        system: "You decide whether a sentence from a phone call expresses the same thing as a \
topic's example sentences. Answer with one JSON object and nothing else: {\"match\": true} or \
{\"match\": false}."
            .to_string(),
        user: format!(
            "Topic: {tracker_name}\nExamples:\n{examples}Sentence: {}",
            sentence.trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Role;

    fn turn(index: usize, role: Role, start_ms: u64, text: &str) -> Turn {
        Turn {
            index,
            role,
            speaker: String::new(),
            start_ms,
            end_ms: start_ms + 1000,
            text: text.into(),
            words: vec![],
        }
    }

    #[test]
    fn transcript_lines_are_tagged_and_cut() {
        let turns = [
            turn(0, Role::Agent, 0, "Hello,\n  how can I help?"),
            turn(1, Role::Customer, 65_000, ""),
            turn(2, Role::Customer, 125_000, "My bill is wrong."),
        ];
        assert_eq!(
            transcript_for_prompt(&turns, 1000),
            "#0 [00:00] agent: Hello, how can I help?\n#2 [02:05] customer: My bill is wrong.\n"
        );
        let cut = transcript_for_prompt(&turns, 45);
        assert_eq!(
            cut,
            "#0 [00:00] agent: Hello, how can I help?\n[… rest of the transcript left out …]\n"
        );
        let cut = transcript_for_prompt(&turns, 24);
        assert_eq!(
            cut,
            "#0 [00:00] agent: Hello,\n[… rest of the transcript left out …]\n"
        );
        let cut = transcript_for_prompt(&turns, 10);
        assert_eq!(cut, "[… rest of the transcript left out …]\n");
    }

    #[test]
    fn action_prompt_names_the_call_date_and_weekday() {
        use chrono::TimeZone;
        let start = Utc
            .with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
            .single()
            .unwrap();
        let p = action_items_prompt(&[turn(0, Role::Agent, 0, "I'll call you.")], start);
        assert!(p.system.contains("2026-11-18 (Wednesday)"), "{}", p.system);
        assert!(p.user.contains("agent: I'll call you."));
    }

    #[test]
    fn tracker_prompt_lists_examples() {
        let p = smart_tracker_prompt(
            "Cancellation",
            &["I want to cancel".into(), " close my account ".into()],
            "please end my contract",
        );
        assert_eq!(
            p.user,
            "Topic: Cancellation\nExamples:\n- I want to cancel\n- close my account\nSentence: please end my contract"
        );
    }
}
