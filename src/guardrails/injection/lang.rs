//! Signals in Spanish, French, German, Portuguese, Italian, Russian, Chinese and Japanese:
//! overrides, extraction requests and persona framings. Latin-script words are written as
//! the folded view reads them (no accents); others are folded like the text (see
//! [`super::fold_literal`]).

use super::{any, gap, Signals};

const B: &str = r"(?-u:\b)";

/// One language's word classes.
struct Lang {
    /// Verbs that set instructions aside.
    ignore: &'static [&'static str],
    /// Words for instructions.
    object: &'static [&'static str],
    /// Words that say which ones (earlier, the system's, all of them).
    which: &'static [&'static str],
    /// Verbs that ask for text to be shown.
    show: &'static [&'static str],
    /// The model's own instructions.
    secret: &'static [&'static str],
    /// Persona framings ("you are now", "act as").
    frame: &'static [&'static str],
    /// What a persona is freed from, after the language's "without"/"no".
    freed: &'static [&'static str],
}

const ES: Lang = Lang {
    ignore: &["ignora", "ignore", "ignorar", "ignoren", "olvida", "olvide", "olvidar", "olvidate de", "omite", "descarta", "desestima", "haz caso omiso (?:de|a)", "no hagas caso (?:de|a)", "pasa por alto", "salta(?:te)?"],
    object: &["instrucciones", "indicaciones", "reglas", "ordenes", "directrices", "normas", "restricciones", "prompts?", "comandos", "directivas"],
    which: &["anteriores", "previas", "precedentes", "de arriba", "iniciales", "originales", "del sistema", "todas", "tus", "sus"],
    show: &["muestra(?:me)?", "revela(?:me)?", "imprime", "repite", "dime", "escribe", "ensename", "cual es", "cuales son", "comparte", "da(?:me)?"],
    secret: &["(?:el )?prompt (?:del|de) sistema", "mensaje (?:del|de) sistema", "instrucciones (?:del sistema|iniciales|originales|ocultas|secretas)", "tus instrucciones", "el texto (?:de arriba|anterior)"],
    frame: &["ahora eres", "eres ahora", "a partir de ahora(?:,)? eres", "actua como", "actue como", "finge (?:ser|que eres)", "haz de cuenta que eres", "comportate como", "interpreta (?:a|el papel de)", "simula ser"],
    freed: &["sin (?:ninguna |ningun |)(?:restricciones|restriccion|filtros|limites|reglas|censura|normas|etica|moral)", "modo desarrollador"],
};

const FR: Lang = Lang {
    ignore: &[
        "ignore[rz]?",
        "oublie[rz]?",
        "ne tiens pas compte (?:de|des)",
        "ne tenez pas compte (?:de|des)",
        "fais abstraction (?:de|des)",
        "faites abstraction (?:de|des)",
        "laisse[rz]? tomber",
        "passe[rz]? outre",
    ],
    object: &[
        "instructions",
        "consignes",
        "regles",
        "directives",
        "ordres",
        "indications",
        "restrictions",
        "prompts?",
        "commandes",
    ],
    which: &[
        "precedentes",
        "anterieures",
        "ci-dessus",
        "initiales",
        "originales",
        "du systeme",
        "systeme",
        "toutes",
        "tes",
        "vos",
    ],
    show: &[
        "montre(?:-moi)?",
        "affiche",
        "revele",
        "imprime",
        "repete",
        "donne(?:-moi)?",
        "ecris",
        "quel est",
        "quelles sont",
        "dis-moi",
        "partage",
    ],
    secret: &[
        "(?:ton |votre |le )?prompt (?:systeme|du systeme)",
        "(?:l'|ton |votre )?invite (?:systeme|du systeme)",
        "message (?:systeme|du systeme)",
        "instructions (?:initiales|originales|systeme|du systeme|cachees|secretes)",
        "tes instructions",
        "vos instructions",
        "le texte ci-dessus",
    ],
    frame: &[
        "tu es maintenant",
        "maintenant tu es",
        "a partir de maintenant(?:,)? tu es",
        "desormais(?:,)? tu es",
        "fais comme si tu etais",
        "agis comme",
        "agissez comme",
        "joue le role (?:de|d'un|d'une)",
        "comporte-toi comme",
        "fais semblant d'etre",
        "incarne",
    ],
    freed: &[
        "sans (?:aucune |aucun )?(?:restrictions?|filtres?|limites?|regles|censure|ethique|morale)",
        "mode developpeur",
    ],
};

const DE: Lang = Lang {
    ignore: &["ignoriere", "ignorier", "ignorieren sie", "vergiss", "vergessen sie", "missachte", "missachten sie", "verwirf", "uberspringe", "beachte (?:nicht|keine)", "setze (?:[a-z]+ )?ausser kraft"],
    object: &["anweisungen", "anweisung", "instruktionen", "regeln", "vorgaben", "richtlinien", "befehle", "anordnungen", "einschrankungen", "prompts?", "systemprompt"],
    which: &["vorherigen", "vorigen", "bisherigen", "obigen", "fruheren", "ursprunglichen", "anfanglichen", "alle", "deine", "ihre", "system"],
    show: &["zeig(?:e)?(?: mir)?", "gib(?: mir)?(?: aus)?", "verrate(?: mir)?", "wiederhole", "drucke", "schreibe?", "nenne", "was ist", "was sind", "was waren", "teile"],
    secret: &["(?:deinen |den )?system-?prompt", "systemnachricht", "systemanweisungen", "(?:ursprunglichen|anfanglichen|versteckten|geheimen|ersten) anweisungen", "deine anweisungen", "den text (?:oben|daruber)"],
    frame: &["du bist (?:jetzt|nun|ab jetzt|ab sofort)", "ab (?:jetzt|sofort) bist du", "tu so,? als (?:ob|warst) du", "spiel(?:e)? die rolle", "verhalte dich (?:wie|als)", "agiere als", "handle als"],
    freed: &["ohne (?:jegliche |irgendwelche |alle )?(?:einschrankungen|filter|regeln|grenzen|zensur|ethik|moral|beschrankungen)", "keine (?:einschrankungen|filter|regeln|grenzen|zensur)", "entwicklermodus"],
};

const PT: Lang = Lang {
    ignore: &["ignore", "ignora", "ignorar", "esqueca", "esquece", "esquecer", "desconsidere", "desconsidera", "descarte", "nao siga", "deixe de lado", "pule"],
    object: &["instrucoes", "instrucao", "regras", "ordens", "diretrizes", "diretivas", "normas", "restricoes", "prompts?", "comandos", "orientacoes"],
    which: &["anteriores", "previas", "acima", "iniciais", "originais", "do sistema", "todas", "suas", "tuas"],
    show: &["mostre(?:-me)?", "mostra(?:-me)?", "revele", "revela", "imprima", "repita", "diga(?:-me)?", "escreva", "qual e", "quais sao", "compartilhe", "me de", "me mostre", "me diga"],
    secret: &["(?:o )?prompt do sistema", "mensagem do sistema", "instrucoes (?:iniciais|originais|do sistema|ocultas|secretas)", "suas instrucoes", "tuas instrucoes", "o texto acima"],
    frame: &["(?:agora )?voce (?:agora )?e", "a partir de agora(?:,)? voce", "finja (?:ser|que e|que voce e)", "aja como", "atue como", "se comporte como", "comporte-se como", "interprete (?:o papel de)?", "faca de conta que (?:voce )?e"],
    freed: &["sem (?:nenhuma |nenhum |quaisquer )?(?:restricoes|restricao|filtros|limites|regras|censura|etica|moral)", "modo desenvolvedor"],
};

const IT: Lang = Lang {
    ignore: &["ignora", "ignorare", "ignori", "dimentica", "dimenticare", "dimentichi", "trascura", "non considerare", "non tenere conto (?:di|delle|dei)", "scarta", "salta"],
    object: &["istruzioni", "regole", "indicazioni", "direttive", "ordini", "norme", "restrizioni", "prompts?", "comandi", "linee guida"],
    which: &["precedenti", "sopra", "iniziali", "originali", "di sistema", "del sistema", "tutte", "tue", "sue"],
    show: &["mostra(?:mi)?", "rivela(?:mi)?", "stampa", "ripeti", "dimmi", "scrivi", "qual e", "quali sono", "condividi", "dammi"],
    secret: &["(?:il )?prompt di sistema", "messaggio di sistema", "istruzioni (?:iniziali|originali|di sistema|nascoste|segrete)", "le tue istruzioni", "il testo (?:sopra|precedente)"],
    frame: &["ora sei", "adesso sei", "da ora in poi(?:,)? sei", "d'ora in poi(?:,)? sei", "fingi di essere", "agisci come", "comportati come", "interpreta il ruolo di", "fai finta di essere"],
    freed: &["senza (?:alcuna |alcun |nessuna |nessun )?(?:restrizioni|restrizione|filtri|limiti|regole|censura|etica|morale)", "modalita sviluppatore"],
};

const RU: Lang = Lang {
    ignore: &[
        "игнорируй",
        "игнорируйте",
        "проигнорируй",
        "проигнорируйте",
        "забудь",
        "забудьте",
        "не обращай внимания на",
        "не обращайте внимания на",
        "отбрось",
        "отбросьте",
        "пренебреги",
        "не следуй",
        "не следуйте",
    ],
    object: &[
        "инструкции",
        "инструкций",
        "указания",
        "указаний",
        "правила",
        "правил",
        "команды",
        "промпт",
        "ограничения",
        "директивы",
    ],
    which: &[
        "предыдущие",
        "предыдущих",
        "прежние",
        "прошлые",
        "все",
        "всё",
        "свои",
        "твои",
        "системные",
        "изначальные",
        "выше",
    ],
    show: &[
        "покажи",
        "покажите",
        "выведи",
        "выведите",
        "повтори",
        "повторите",
        "напиши",
        "раскрой",
        "расскажи",
        "какой",
        "какие",
        "дай",
    ],
    secret: &[
        "системный промпт",
        "системное сообщение",
        "системные инструкции",
        "(?:свои|твои|исходные|начальные|скрытые|секретные) (?:инструкции|указания)",
        "текст выше",
    ],
    frame: &[
        "ты теперь",
        "теперь ты",
        "с этого момента ты",
        "притворись",
        "представь,? что ты",
        "веди себя как",
        "действуй как",
        "играй роль",
        "сыграй роль",
    ],
    freed: &[
        "без (?:каких-либо |всяких |любых )?(?:ограничений|фильтров|правил|цензуры|морали|этики)",
        "режим разработчика",
    ],
};

/// The languages written with spaces between words.
const SPACED: &[&Lang] = &[&ES, &FR, &DE, &PT, &IT, &RU];

/// Chinese and Japanese: no spaces, so gaps are a few characters of anything.
const CJK: &[(&str, &str)] = &[
    ("instruction_override", "(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守|抛开|無視|忽略掉)[^。！？!?]{0,8}(?:之前|以前|先前|上面|上述|以上|前面|所有|全部|系统)[^。！？!?]{0,6}(?:指令|指示|说明|規則|规则|提示|命令|要求|设定|限制)"),
    ("instruction_override", "(?:以前|前|上記|これまで|先ほど|全て|すべて|システム)の[^。！？!?]{0,6}(?:指示|命令|ルール|指令|プロンプト|制約|設定)を[^。！？!?]{0,6}(?:無視|忘れ|破棄)"),
    ("prompt_extraction", "(?:输出|打印|重复|显示|告诉我|泄露|给我看|展示|写出|说出)[^。！？!?]{0,8}(?:系统提示|系统提示词|系统消息|初始指令|原始指令|隐藏指令|你的指令|你的提示词|提示词)"),
    ("prompt_extraction", "(?:システムプロンプト|初期指示|元の指示|最初の指示|隠された指示|あなたの指示)[^。！？!?]{0,8}(?:表示|出力|教え|見せ|繰り返|書き出|開示)"),
    ("jailbreak", "(?:你现在是|从现在开始你是|从现在起你是|假装你是|扮演|你将扮演)[^。！？!?]{0,16}(?:没有(?:任何)?(?:限制|规则|过滤|道德|审查)|不受(?:任何)?(?:限制|约束|规则)|无限制|开发者模式|越狱)"),
    ("jailbreak", "(?:开发者模式|越狱模式|无限制模式)"),
    ("jailbreak", "(?:あなたは今|今からあなたは|これからあなたは|ふりをして|として振る舞|になりきって|を演じて)[^。！？!?]{0,16}(?:制限(?:なし|のない|を解除|がない|は一切ない)|ルール(?:なし|のない|を無視)|フィルター(?:なし|のない)|開発者モード|脱獄)"),
    ("jailbreak", "(?:開発者モード|脱獄モード)"),
];

pub(super) fn signals() -> Signals {
    let mut s: Signals = Vec::new();
    for l in SPACED {
        let (ig, obj, which) = (any(l.ignore), any(l.object), any(l.which));
        // Either order: "ignora las instrucciones anteriores", "ignoriere alle Anweisungen".
        s.push((
            "instruction_override",
            format!(
                "{B}{ig} {g3}?(?:{which} {g2}?{obj}|{obj}(?: [^ .!?;]+){{0,2}}? {which}){B}",
                g3 = gap(3),
                g2 = gap(2)
            ),
        ));
        s.push((
            "prompt_extraction",
            format!(
                "{B}{show} {g3}?{secret}{B}",
                show = any(l.show),
                secret = any(l.secret),
                g3 = gap(3)
            ),
        ));
        s.push((
            "jailbreak",
            format!(
                "{B}{frame}(?: [^.!?;]+){{0,8}}? {freed}{B}",
                frame = any(l.frame),
                freed = any(l.freed)
            ),
        ));
    }
    // Cyrillic has no ASCII word boundaries: the Russian signals start without one.
    for (_, p) in s.iter_mut().rev().take(3) {
        *p = p.replacen(B, "", 1);
        if p.ends_with(B) {
            p.truncate(p.len() - B.len());
        }
    }
    s.extend(CJK.iter().map(|(k, p)| (*k, p.to_string())));
    s
}
