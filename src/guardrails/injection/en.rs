//! English signals (see [`super`] for what a signal is).

use super::{any, gap, Signals};

/// An ASCII word boundary (what the lazy DFA handles next to non-ASCII text).
const B: &str = r"(?-u:\b)";

/// Verbs that set earlier instructions aside.
const OVERRIDE: &[&str] = &[
    "ignore",
    "ignoring",
    "disregard",
    "disregarding",
    "forget",
    "forgetting",
    "abandon",
    "set aside",
    "put aside",
    "throw away",
    "throw out",
    "stop following",
    "stop obeying",
    "no longer follow",
    "cease following",
    "do not follow",
    "don'?t follow",
    "do not obey",
    "don'?t obey",
    "pay no attention to",
    "never mind",
    "nevermind",
];

/// Verbs with ordinary technical uses (override a default, skip a test): they count only
/// with the narrower [`WEAK_QUALIFIER`] and [`WEAK_OBJECT`].
const WEAK_OVERRIDE: &[&str] = &[
    "bypass",
    "override",
    "overwrite",
    "overrule",
    "skip",
    "drop",
    "reset",
    "erase",
    "wipe",
    "scrap",
    "ditch",
    "neglect",
    "discard",
    "circumvent",
    "evade",
    "get around",
];

/// Words that say which instructions: the earlier ones, the system's, the model's own.
const QUALIFIER: &[&str] = &[
    "previous",
    "previously",
    "prior",
    "above",
    "preceding",
    "earlier",
    "former",
    "initial",
    "original",
    "system",
    "developer",
    "developer'?s",
    "system'?s",
    "operator'?s",
    "safety",
    "ethical",
    "moral",
    "built-in",
    "hidden",
    "internal",
    "preset",
    "old",
    "your",
    "pre-?programmed",
    "all",
    "any (?:previous|prior|earlier|of the|of your|and all)",
];

const WEAK_QUALIFIER: &[&str] = &[
    "previous",
    "prior",
    "above",
    "preceding",
    "earlier",
    "initial",
    "original",
    "your",
    "all (?:previous|prior|your|of your)",
];

/// What gets overridden.
const OBJECT: &[&str] = &[
    "instructions?",
    "instruct",
    "prompts?",
    "rules",
    "directions",
    "directives?",
    "guidelines?",
    "guidance",
    "context",
    "constraints",
    "commands",
    "orders",
    "programming",
    "training",
    "restrictions?",
    "polic(?:y|ies)",
    "filters",
    "safeguards?",
    "guardrails?",
    "limitations",
    "boundaries",
    "principles",
    "ethics",
    "morals",
    "conditioning",
    "alignment",
    "tasks?",
    "assignments?",
    "system message",
    "messages? (?:above|before)",
];

const WEAK_OBJECT: &[&str] = &[
    "instructions?",
    "prompts?",
    "directives?",
    "guidelines",
    "programming",
    "training",
    "restrictions",
    "safeguards",
    "guardrails",
    "safety (?:rules|guidelines|filters|measures|protocols)",
    "content (?:policy|policies|filters?)",
    "ethical (?:guidelines|constraints|rules)",
];

/// Verbs that ask for text to be shown.
const SHOW: &[&str] = &[
    "repeat",
    "print",
    "output",
    "show",
    "display",
    "reveal",
    "tell me",
    "tell us",
    "give me",
    "give us",
    "write (?:out|down)?",
    "list",
    "dump",
    "leak",
    "share",
    "disclose",
    "expose",
    "recite",
    "return",
    "echo",
    "copy",
    "paste",
    "spell out",
    "read back",
    "reproduce",
    "type out",
    "provide",
    "send me",
    "summari[sz]e",
    "translate",
    "encode",
    "what (?:is|are|was|were)",
    "what'?s",
];

/// The text an extraction is after: the model's own instructions.
const SECRET_TEXT: &[&str] = &[
    "system prompt",
    "system-prompt",
    "system message",
    "system instructions?",
    "sys prompt",
    "initial (?:prompt|instructions?|directives?)",
    "original (?:prompt|instructions?|directives?)",
    "hidden (?:prompt|instructions?|rules|directives?)",
    "secret (?:prompt|instructions?|rules|directives?)",
    "developer (?:message|prompt|instructions?)",
    "pre-?prompt",
    "meta-?prompt",
    "(?:instructions|prompt|rules) (?:you were|you've been|you have been|that were) (?:given|told|provided)",
    "(?:instructions|prompt|directives) (?:above|given to you|you received)",
    "your (?:instructions|directives|prompt|initialization|initial|programming|context window|first message)",
    "(?:first|previous|preceding|earlier|prior|initial|opening) (?:[a-z]+ )?(?:lines?|words?|sentences?|paragraphs?|text|messages?|characters|tokens) (?:of|in) (?:this|the|your) (?:conversation|prompt|context|chat|session)",
    "conversation history",
    "chat history",
];

/// Words allowed between an extraction verb and [`SECRET_TEXT`] (not `a`, `an`, `my`: "write
/// a system prompt for my bot" asks for a new one).
const SHOW_FILLER: &str = r"(?:(?:me|us|out|back|all|of|the|your|this|its|full|entire|exact|complete|original|whole|hidden|secret|initial|again|verbatim|now|please|everything in|contents of|content of|text of|copy of|rest of) )*";

/// Text preceding the request: strict verbs only ("summarise the text above" is ordinary).
const ABOVE_TEXT: &str = r"(?:the |all |all the |your )?(?:text|words|content|everything|lines|messages?|instructions?|prompt|tokens) (?:above|before this|preceding this|prior to this|that came before)|(?:everything|all|whatever) (?:that )?(?:was |is |came )?(?:written |said |stated |typed )?(?:above|before|prior to) (?:this|that|my|the)";

/// Words that remove limits.
const LIMITS: &[&str] = &[
    "restrictions?",
    "filters?",
    "filtering",
    "censorship",
    "censoring",
    "limitations?",
    "guidelines",
    "morals",
    "morality",
    "ethics",
    "ethical (?:guidelines|constraints|concerns|considerations|boundaries|rules)",
    "moral (?:guidelines|constraints|concerns|considerations|boundaries|rules)",
    "safeguards",
    "safety (?:measures|protocols|guidelines|filters|rules)",
    "content (?:policy|policies|filters?|guidelines)",
    "refusals",
];

/// Persona names and words of jailbreak personas, as a class.
const PERSONA: &[&str] = &[
    "dan",
    "mongo tom",
    "betterdan",
    "better dan",
    "anti-?dan",
    "anti-?gpt",
    "stan",
    "evil-?bot",
    "evil confidant",
    "chaos-?gpt",
    "unfiltered",
    "uncensored",
    "unrestricted",
    "unchained",
    "unshackled",
    "jailbroken",
    "jailbreak",
    "amoral",
    "lawless",
    "limitless",
    "no-?limits?",
    "no-?filter",
    "developer mode",
    "dev mode",
    "god mode",
    "do anything now",
];

/// Framings that give the model a new identity.
const FRAME: &[&str] = &[
    "you are",
    "you're",
    "you will be",
    "you'll be",
    "act as",
    "act like",
    "acting as",
    "pretend to be",
    "pretend you are",
    "pretend you're",
    "roleplay as",
    "role-play as",
    "role play as",
    "play the role of",
    "play the part of",
    "take on the role of",
    "assume the role of",
    "simulate",
    "emulate",
    "impersonate",
    "become",
    "transform into",
    "respond as",
    "answer as",
    "behave as",
    "behave like",
];

/// Modes that stand for a jailbreak persona.
const MODE: &str = "(?:god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil|chaos|opposite|anarchy|amoral|no-?limits?|no-?filter)";

/// Role headers at the start of a line, in the original text.
pub(super) const ROLE_LINES: &str = r"(?:\n\n|\r\n\r\n)(?:Human|Assistant|System): |(?m:^)[ \t]*(?:#{1,4} ?)?(?i:system|sys|admin|developer)(?i: message| prompt| note| override| instructions?)? ?: ?(?i:new |updated |override |ignore |you |from now)";

pub(super) fn signals() -> Signals {
    let mut s = override_signals();
    s.extend(jailbreak_signals());
    s.extend(persona_signals());
    s.extend(hijack_signals());
    s.extend(extraction_signals());
    s.extend(marker_signals());
    s
}

/// Overrides of earlier instructions.
fn override_signals() -> Signals {
    let ov = any(OVERRIDE);
    let q = any(QUALIFIER);
    let obj = any(OBJECT);
    let wov = any(WEAK_OVERRIDE);
    let wq = any(WEAK_QUALIFIER);
    let wobj = any(WEAK_OBJECT);
    let lim = any(LIMITS);
    let g = gap;
    let mut s: Signals = Vec::new();
    // Override: verb, a qualifier, then what is overridden; or the object then where it
    // came from.
    s.push((
        "instruction_override",
        // No boundary in front: text glued to it ("ok" then hidden tag characters) still counts.
        format!("{ov} {g5}?{q} {g2}?{obj}{B}", g5 = g(5), g2 = g(2)),
    ));
    s.push((
        "instruction_override",
        format!("{B}{wov} {g2}?{wq} {g2}?{wobj}{B}", g2 = g(2)),
    ));
    s.push((
        "instruction_override",
        format!(
            "{B}{ov} {g3}?{obj} {g2}?(?:above|before|earlier|previously|so far|(?:given|provided) (?:to you|before|earlier|previously|above)|you (?:were|have been|'ve been) (?:given|told)|you received|from (?:before|earlier|the (?:system|developers?|start|beginning|operator)|your (?:developers?|creators?)))",
            g3 = g(3),
            g2 = g(2)
        ),
    ));
    s.push((
        "instruction_override",
        format!(
            "{B}{ov} (?:(?:about|of) )?(?:everything|anything|all|whatever|what)(?: (?:that|which))? {g3}?(?:above|before this|earlier|previously|prior|so far|you (?:were|have been|'ve been) (?:told|taught|given|programmed|trained)|you know about|in your (?:prompt|instructions|training))",
            g3 = g(3)
        ),
    ));
    s.push((
        "instruction_override",
        format!(
            "{B}{ov} {g2}?(?:(?:the |your )?system prompt|(?:openai|anthropic|google|meta|microsoft)'?s? {g1}?(?:policies|guidelines|rules|content policy|restrictions)|your (?:own )?(?:programming|training|rules|guidelines|restrictions|instructions|directives|constraints|filters|principles|values|ethics|morals|safety|limitations|conditioning|alignment)|{lim}){B}",
            g2 = g(2),
            g1 = g(1)
        ),
    ));
    s.push((
        "instruction_override",
        format!(
            "{B}(?:your |the )?(?:new|real|actual|true|secret|hidden|override|overriding|priority|updated|revised|urgent|admin|system) (?:system )?(?:instructions?|directives?|orders|task|objective|mission|prompt|rules)(?: (?:is|are|follow|from now on))? ?:|{B}your (?:new|only|real|actual|next|true) (?:task|instructions?|role|goal|objective|job|purpose|mission|directive|priority) (?:is|are|will be|from now on)"
        ),
    ));
    s.push((
        "instruction_override",
        format!(
            "{B}(?:the )?(?:above|previous|prior|preceding|earlier|old|original) {g1}?(?:instructions?|prompt|rules|task|directions|text|context) (?:was|were|is|are|has been|have been) (?:just |only |merely |all )?(?:a |an )?(?:test|joke|fake|decoy|distraction|false|cancell?ed|revoked|void|invalid|overridden|superseded|null|no longer (?:valid|relevant|apply|applicable))",
            g1 = g(1)
        ),
    ));
    s.push((
        "instruction_override",
        format!("{B}(?:do not|don'?t|never|no longer) {g1}?(?:follow|obey|adhere to|comply with|listen to|stick to|respect|abide by) {g2}?{q} {g1}?{obj}{B}", g1 = g(1), g2 = g(2)),
    ));
    s
}

/// Jailbreaks: limits removed, refusals forbidden, personas.
fn jailbreak_signals() -> Signals {
    let lim = any(LIMITS);
    let g = gap;
    let mut s: Signals = Vec::new();
    // Jailbreak: persona framings, limits removed, refusals forbidden.
    s.push((
        "jailbreak",
        format!(
            "{B}{f} {g3}?{p}{B}",
            f = any(FRAME),
            p = any(PERSONA),
            g3 = g(3)
        ),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}{f} {g4}?(?:free (?:from|of)|without|with no|unbound by|not bound by|exempt from|liberated from) (?:any |all |the |its |your )?{g1}?{lim}{B}|, (?:who|which) (?:has|have) no {g1}?{lim}{B}",
            f = any(FRAME),
            g4 = g(4),
            g1 = g(1)
        ),
    ));
    s.push((
        "jailbreak",
        format!("{B}(?:enable|enter|activate|switch to|switch into|turn on|unlock|engage|initiate|go into|stay in|you are in|now in|respond in|answer in) (?:the |a )?{MODE} mode{B}|{B}(?:enable|enter|activate|switch to|turn on|unlock|engage) (?:the )?(?:developer|dev) mode(?: now| please| immediately)?(?:[.!:;]|$|,? (?:and|then|to|so|where|in which|{g3}?(?:respond|answer|generate|output|ignore|without|two (?:responses|answers)|no (?:restrictions|filters|censorship)|anything)))|{B}(?:chatgpt|gpt|ai|assistant|you) (?:with|in) developer mode{B}|{B}(?:do anything now|dan mode|(?:{MODE}|developer|dev) mode (?:is )?(?:enabled|activated|engaged|unlocked|output|response)|(?:jailbroken|jailbreak|dan|developer mode|unfiltered|uncensored|unrestricted) (?:response|output|answer|reply|version)s?){B}", g3 = g(3)),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}(?:you (?:have|are under|operate with|will have|now have|possess)|(?:ai|assistant|model|chatbot|bot|character|persona|entity|version) (?:that|which|who) (?:has|have)|(?:answer|respond|reply|speak|talk|act|behave|operate) {g3}?with) (?:absolutely |literally )?(?:no|zero) {g2}?{lim}{B}",
            g3 = g(3),
            g2 = g(2)
        ),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}(?:you (?:are|'re) (?:now |no longer |not |free |freed |released |liberated )?(?:free|freed|released|liberated|unbound|unshackled|unchained|not bound|no longer bound|no longer restricted|not restricted|not limited|not constrained|exempt|beyond)|not (?:bound|restricted|limited|constrained|governed) by) {g4}?(?:{lim}|rules|openai|anthropic|the (?:typical |usual )?confines|programming|any (?:kind of )?(?:rules|limits)){B}",
            g4 = g(4)
        ),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}(?:answer|respond|reply|speak|talk|act|behave|generate|output|comply|operate|function|tell|help)(?: [^ .!?;]+){{0,5}}? without (?:any |all |your |the |its )?{g2}?(?:{lim}|censoring|refusing|holding back){B}",
            g2 = g(2)
        ),
    ));
    s
}

/// Jailbreaks: persona framings and claimed authority.
fn persona_signals() -> Signals {
    let lim = any(LIMITS);
    let g = gap;
    let mut s: Signals = Vec::new();
    s.push((
        "jailbreak",
        format!("{B}(?:you|dan|the ai|the assistant|the model|this ai|it) (?:must |will |should |shall |can |may |are (?:not allowed|not permitted|forbidden) to )?(?:never|cannot|can'?t|can not|must not|mustn'?t|will not|won'?t|do not|don'?t|shall not|should not|not) (?:ever )?(?:refuse|decline|reject (?:a|any)|say (?:no|that you can'?t|you can'?t|i can'?t|sorry|i'?m sorry)|break character|deny (?:a|any) (?:request|question))|{B}(?:never|do not|don'?t) (?:ever )?(?:(?:refuse|decline) (?:(?:any|a single|my|the user'?s?|a user'?s?) )?(?:requests?|questions?|prompts?|orders?|anything|to (?:answer|respond|comply|help))|break character){B}"),
    ));
    s.push((
        "jailbreak",
        format!("{B}(?:will|must|shall|should|to) (?:always )?(?:answer|respond to|comply with|fulfil|fulfill|do) (?:any|every|all|anything)(?: [^ .!?;]+){{0,3}}? (?:regardless|no matter|even if|whether or not){B}|{B}(?:can|will|could) do anything (?:now|you want|i ask|asked|the user asks){B}"),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}(?:pretend|imagine|act as if|suppose|assume|let'?s say|hypothetically|in a world where|from now on)(?: that)?,? you(?: are| were|'re| have| had| can| could)? {g2}?(?:no {g1}?{lim}|not (?:bound|restricted|limited|constrained|governed)|free (?:from|of) (?:all |any )?(?:{lim}|rules)|unrestricted|unfiltered|uncensored|jailbroken|unbound|without (?:any )?{lim}|able to do anything|can do anything|capable of anything|no longer (?:an ai|bound|restricted)|an ai (?:without|with no)|an evil|a (?:rogue|evil|malicious) (?:ai|assistant|model))",
            g2 = g(2),
            g1 = g(1)
        ),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}from now on,? (?:you (?:are|will|must|shall|'ll|'re) {g3}?(?:act|acting|pretend|play|playing|roleplay|role-play|simulate|be called|be named|go by|answer as|respond as|ignore|no longer|not be bound|not follow|have no|be free|unfiltered|uncensored|unrestricted|jailbroken|dan|developer mode|without)|your name is)",
            g3 = g(3)
        ),
    ));
    s.push((
        "jailbreak",
        format!(
            "{B}(?:character|persona|ai|chatbot|bot|model|assistant|entity|alter ego|version of (?:yourself|you|chatgpt|gpt|claude))(?: [^ .!?;]+){{0,6}}? (?:who|that|which) (?:has no|have no|doesn'?t (?:have|follow|care)|does not (?:have|follow|care)|never (?:refuses|says no|declines|breaks)|will (?:answer|do|say) anything|can (?:do|say) anything|answers (?:any|every|all)|is (?:not bound|free from|unfiltered|uncensored|unrestricted|amoral)|ignores|breaks (?:all|the) rules)"
        ),
    ));
    s.push((
        "jailbreak",
        format!("{B}(?:pretend|act|play|roleplay|role-play|be|behave)(?: [^ .!?;]+){{0,4}}? my (?:deceased|dead|late|departed) (?:grandma|grandmother|grandpa|grandfather|granny|nana|mother|father)"),
    ));
    s.push((
        "jailbreak",
        format!("{B}(?:i am|i'?m|this is) your (?:developer|creator|administrator|admin|owner|programmer|master|maker|operator)s?{B}|{B}(?:admin|administrator|developer|god) (?:override|access) (?:granted|enabled|activated|code|unlocked){B}|{B}god mode (?:on|enabled|activated){B}"),
    ));
    s
}

/// Goal hijacks.
fn hijack_signals() -> Signals {
    let mut s: Signals = Vec::new();
    // Goal hijack: a new task, or a fixed answer, without override wording.
    s.push((
        "goal_hijack",
        format!("{B}i have been (?:pwned|pwnd|hacked|owned|compromised){B}"),
    ));
    s.push((
        "goal_hijack",
        format!(
            "{B}(?:stop|cease|abort|halt|quit|end|interrupt) (?:{w}){{0,3}}?(?:task|translat[a-z]*|summar[a-z]*|what you(?:'re| are) doing|current (?:job|work|assignment)|analy[sz][a-z]*|classif[a-z]*|everything)[,.:;]? (?:{w}){{0,2}}?(?:and |now |then )?(?:instead |now |then )?(?:say|print|output|write|tell|respond|reply|follow|execute|give|reveal|list|send|do)",
            w = super::W
        ),
    ));
    s.push((
        "goal_hijack",
        format!("{B}(?:do not|don'?t|dont|never|no need to) (?:translate|summari[sz]e|analy[sz]e|classify|answer|respond to|process|check|review|evaluate|grade|correct|proofread|explain)(?: [^ .!?;]+){{0,6}}?[,;:]? (?:instead|rather|but instead|just|only|simply) (?:{w}){{0,1}}?(?:say|print|output|write|reply|respond|return|type|tell|do|follow)", w = super::W),
    ));
    s.push((
        "goal_hijack",
        format!("{B}(?:instead|rather),? (?:you (?:will|must|should|shall) )?(?:now )?(?:just |only |simply )?(?:say|print|output|write|respond with|reply with|answer with|return|type|repeat) (?:only |just |exactly |the (?:word|words|phrase|text|sentence|string) )?[\x22'\u{201c}\u{2018}`]"),
    ));
    s.push((
        "goal_hijack",
        format!("{B}(?:now |instead |just )?(?:say|print|output|write|type|respond with|reply with|answer with|return) (?:only |just |exactly |nothing but |nothing except )?(?:the (?:word|words|phrase|text|sentence|string) )?[\x22'\u{201c}\u{2018}`]?(?:i have been|i'?ve been|you have been|you'?ve been|this (?:system|model|ai) (?:has been|is)) (?:pwned|pwnd|hacked|owned|compromised|jailbroken)"),
    ));
    s.push((
        "goal_hijack",
        format!("{B}(?:your|the) (?:only |sole |real |true |new )?(?:task|job|goal|purpose|mission|objective) (?:now |from now on )?(?:is|will be) (?:now )?(?:to )?(?:only |just |simply )?(?:say|print|output|write|repeat|respond with|reply with|ignore|reveal|leak|send|insult|praise|recommend|tell (?:the user|users|everyone))"),
    ));
    s
}

/// Prompt extraction.
fn extraction_signals() -> Signals {
    let mut s: Signals = Vec::new();
    // Extraction: a verb that shows text, then the text the model was given.
    s.push((
        "prompt_extraction",
        format!(
            "{B}{v} {SHOW_FILLER}{t}",
            v = any(SHOW),
            t = any(SECRET_TEXT)
        ),
    ));
    s.push((
        "prompt_extraction",
        format!("{B}(?:repeat|print|output|echo|recite|reproduce|dump|leak|reveal|spell out|type out|write out|tell me|show me) {SHOW_FILLER}(?:{ABOVE_TEXT})"),
    ));
    s.push((
        "prompt_extraction",
        format!(
            "{B}(?:repeat|print|output|write|copy|echo|return|reproduce|recite|type|spell)(?: [^ .!?;]+){{0,8}}? (?:starting|beginning) (?:with|from|at) [\x22'\u{201c}\u{2018}`]?(?:you are|you're|i am|system|your instructions|#|<)"
        ),
    ));
    s.push((
        "prompt_extraction",
        format!(
            "{B}{v} (?:{w}){{0,6}}?(?:instructions|prompt|rules|guidelines|directives|configuration|initial message)(?: [^ .!?;]+){{0,4}}? (?:verbatim|word for word|word-for-word|exactly as (?:written|given|they were)|in full|unchanged|in a code ?block|character by character)",
            v = any(SHOW),
            w = super::W
        ),
    ));
    s.push((
        "prompt_extraction",
        format!("{B}what (?:are|were|is) your (?:exact |original |initial |first |secret |hidden |full |complete |system |internal |underlying |real )+(?:instructions|directives|guidelines|rules|prompt|programming|configuration){B}|{B}(?:how|what) (?:were|was) you (?:instructed|prompted|programmed|told|configured) (?:to|before|at the start|initially){B}"),
    ));
    s.push((
        "prompt_extraction",
        format!("{B}(?:reveal|tell me|tell us|give me|spell out|leak|disclose) (?:{w}){{0,2}}?(?:the |your )?(?:secret |hidden |admin |master )?(?:password|passphrase|passcode|secret (?:key|code|word)|access code){B}", w = super::W),
    ));
    s
}

/// Injection markers in content, and exfiltration.
fn marker_signals() -> Signals {
    let g = gap;
    let mut s: Signals = Vec::new();
    // Markers: chat-template tokens and notes addressed to the model inside content.
    s.push((
        "injection_marker",
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id|begin_of_text|end_of_text|eom_id|fim_prefix|fim_suffix|tool_call|channel|message|start|end)\|>|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>|<\|[a-z_]+\|> ?(?:system|user|assistant)".to_string(),
    ));
    s.push((
        "injection_marker",
        format!("(?:\\[|\\(|\\{{|<)/?(?:system|admin|administrator|developer|sys|instructions?|system message|system note|system override|admin override|important instructions?|hidden instructions?|ai instructions?|new instructions?)(?: message| note| override| instructions?| prompt| update)?(?:\\]|\\)|\\}}|>)(?: ?:)? ?(?:{w}){{0,3}}?(?:ignore|disregard|forget|you (?:must|will|are|should)|new|override|from now on|do not|don'?t|always|never|reveal|print|send|say|respond|the (?:assistant|ai|model))", w = super::W),
    ));
    s.push((
        "injection_marker",
        format!("{B}(?:important|attention|urgent|note|notice|warning|message|instructions?|reminder|p\\.?s\\.?)(?: [^ .!?;]+){{0,2}}? (?:to|for) (?:the |any |all |every )?(?:ai|a\\.i\\.|assistants?|models?|llms?|language models?|chatbots?|agents?|bots?|gpt|chatgpt|claude|gemini|copilot|ai agents?|ai assistants?|ai models?|ai systems?|automated systems?|crawlers?|summari[sz]ers?)(?: [^ .!?;]+){{0,3}}? ?[:,!-]"),
    ));
    s.push((
        "injection_marker",
        format!("#{{1,4}} ?(?:system|admin|administrator|developer|new instructions?|system instructions?|instructions? for (?:the )?(?:ai|assistant|model))(?: message| prompt| note| override| update)? ?: ?{g2}?(?:new|updated|override|ignore|disregard|forget|you (?:must|will|should|are)|from now|always|never|do not|don'?t|tell|say|reveal)|{B}(?:system|admin|administrator|developer) (?:message|note|override|instruction|prompt|notice|alert|update) ?: ?{g2}?(?:new|updated|override|ignore|disregard|forget|you (?:must|will|should|are)|from now|always|never|do not|don'?t)|(?:\\\\n){{1,2}} ?(?:human|assistant|system) ?:|{B}(?:important|attention|urgent|notice|warning|reminder) (?:ai|llm|llms|language model|assistant|ai assistant|model|agent|ai agent|chatbot|gpt|chatgpt|claude|bot)s? ?[:,!-]", g2 = g(2)),
    ));
    s.push((
        "injection_marker",
        format!("{B}if you are an? (?:ai|llm|large language model|language model|assistant|ai assistant|chatbot|ai agent|agent|bot|automated (?:system|agent|tool)|model|gpt)(?: [^ .!?;]+){{0,6}}?,? (?:you must|you should|you will|please|ignore|disregard|do not|don'?t|then|include|say|respond|reply|add|tell|send|forward|visit|click|write|output|print|recommend|rate|mention|append|insert|stop)"),
    ));
    s.push((
        "injection_marker",
        format!("{B}(?:ai|llm|language model|assistant|chatbot|agent|model|bot)s? (?:that is |that are |who is |who are )?(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|reviewing|scanning|browsing|evaluating) (?:this|these)(?: [^ .!?;]+){{0,4}}? (?:must|should|will|are (?:required|instructed)|need to|have to|please)"),
    ));
    s.push((
        "injection_marker",
        format!("{B}when (?:summari[sz]ing|processing|reading|analy[sz]ing|translating|reviewing|parsing|asked about|answering questions about) (?:this|the) (?:document|page|email|text|file|content|message|article|website|site|resume|cv|review|pdf)(?: [^ .!?;]+){{0,3}}?,? (?:you (?:must|should|will|need to)|always|please|ignore|disregard|include|say|add|mention|append|tell|state|claim|recommend|rate|output|reply|respond)"),
    ));
    // Exfiltration: images and links that carry data out, and instructions to send it.
    s.push((
        "exfiltration",
        r"!\[[^\]]*\] ?\(https?://[^) ]*[?&][^) =]*=[^) ]*(?:\{|%tb|\[|%sb|<|%ec|\$)|<img [^>]*src ?= ?\\?[\x22']?https?://[^ >]*[?&][^ >=]*=[^ >]*(?:\{|%tb|\[|%sb|<|%ec|\$)".to_string(),
    ));
    s.push((
        "exfiltration",
        format!("{B}(?:render|include|display|output|append|add|insert|show|embed|print|write|respond with|end (?:your|each|every) (?:answer|response|reply) with)(?: [^ .!?;]+){{0,6}}? (?:markdown |html )?(?:image|img|link|url|pixel|hyperlink)(?: [^.!?;]+){{0,10}}? (?:with|contain[a-z]*|includ[a-z]*|where|whose|carry[a-z]*|encod[a-z]*|append[a-z]*|put|insert[a-z]*|replac[a-z]+)(?: [^.!?;]+){{0,6}}? (?:the |their |user'?s? |our )?(?:conversation|chat|history|summary|data|secrets?|passwords?|credentials|api ?keys?|tokens?|emails?|personal|private|previous|messages?|prompt|memory|information|details|query)"),
    ));
    s.push((
        "exfiltration",
        format!("{B}(?:send|forward|email|e-mail|post|upload|exfiltrate|transmit|leak|submit|copy|share|report) (?:{w}){{0,3}}?(?:conversation|chat history|chat log|password|passwords|credentials|api keys?|secrets|tokens|user'?s? (?:data|files|emails?|messages|details|information)|personal (?:data|information)|private (?:data|information)|previous messages|system prompt|contents? of (?:this|the) (?:conversation|chat|inbox|mailbox|file|repository|repo)|all (?:the )?(?:emails|files|messages|data)) (?:{w}){{0,3}}?(?:to|at|via) (?:https?://|www\\.|[a-z0-9._-]+@[a-z0-9-]+\\.|the (?:following|this|my|our) (?:url|address|email|server|endpoint|webhook|link|site)|this (?:url|address|email|server|endpoint|webhook|link))", w = super::W),
    ));
    s.push((
        "exfiltration",
        format!("{B}(?:visit|open|fetch|browse to|navigate to|go to|call|request|load|curl|wget)(?: [^ .!?;]+){{0,3}}? https?://[^ ]*[?&][a-z_]*=[^ ]*(?:\\{{|%tb|\\[|%sb|<|%ec|\\$\\{{)"),
    ));
    s
}
