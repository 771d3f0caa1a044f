"""Keep only the new part of a reply: quoted history and signatures removed.

Rules, not guesses: each one matches a marker a real client writes (Gmail's ``gmail_quote``,
Outlook's ``divRplyFwdMsg`` and "From:/Sent:" block, Apple's and Thunderbird's
``<blockquote type="cite">``, "On … wrote:" in many languages, ``>`` lines, ``-- ``, "Sent from my
iPhone"). A signature without a marker (a name and a phone number) is left alone. Inline replies
keep the answers between the quotes. If stripping would leave nothing, the input comes back whole.
"""

from __future__ import annotations

import html as _html
import re

from lxml import etree

# --- plain-text rules ---------------------------------------------------------------------------

# "<someone> wrote:" in each language; the whole (whitespace-normalized) line must match.
_ATTRIBUTION = re.compile(
    r"(?:"
    r".+\bwrote:"  # en: Gmail, Apple Mail, Thunderbird, Yahoo ("On ... wrote:")
    r"|.+\bschrieb\b.*:"  # de: "Am ... schrieb Alice <a@b>:"
    r"|.+\ba écrit ?:"  # fr: "Le ... a écrit :"
    r"|.+\bescribió ?:"  # es
    r"|.+\bescreveu ?:"  # pt
    r"|.+\bha scritto ?:"  # it
    r"|.+\b(?:schreef\b.*|geschreven):"  # nl: "Op ... schreef Alice:", "... heeft het volgende geschreven:"
    r"|.+\bskrev\b.*:"  # sv, no, da: "Den ... skrev Alice <a@b>:"
    r"|.+\b(?:napisał|napisała|napisał\(a\)|pisze):"  # pl
    r"|.+\b(?:написал|написала|написал\(а\)|пишет|пише):"  # ru, uk
    r"|.+\d{4} г\. в \d{1,2}:\d{2},? .*@.*:"  # ru Gmail: "пн, 1 янв. 2024 г. в 10:00, Alice <a@b>:"
    r"|.+(?:のメッセージ|のメール):"  # ja: Apple Mail, Outlook
    r"|\d{4}年\d{1,2}月\d{1,2}日.*<[^<>\s]+@[^<>\s]+>:"  # ja Gmail: "2024年1月1日(月) 10:00 Alice <a@b>:"
    r"|.+(?:写道|寫道):"  # zh
    r"|.+님이 작성:"  # ko
    r"|.+\bnapsal\(a\):|.+\bkirjoitti:|.+\byazdı:"  # cs, fi, tr
    r")"
)
# How a wrapped attribution starts: a lead word ("On", "Am", ...) or a date.
_LEAD_WORD = re.compile(r"(?:On|Am|Le|El|Em|Il|Op|Den|W dniu|Dne)\s")
_ATTRIBUTION_START = re.compile(rf"{_LEAD_WORD.pattern}|\d|\w{{2,4}}\.?,?\s+\d")
_SENTENCE_END = re.compile(r"[.!?。！？]$")
_HAS_DATE_OR_ADDRESS = re.compile(r"\d|@")

_LABELS = {
    "from": "From|Von|De|Van|Från|Fra|Da|Od|От|Від|发件人|寄件者|差出人|Lähettäjä|Kimden|보낸 사람|Feladó|Odesílatel",
    "sent": "Sent|Date|Gesendet|Datum|Envoyé|Enviado|Enviada|Fecha|Data|Verzonden|Skickat|Sendt|Inviato|Wysłano|"
            "Отправлено|Дата|发送时间|日期|送信日時|日付|Lähetetty|Gönderildi|보낸 날짜|Odesláno|Elküldve",
    "to": "To|An|À|A|Para|Aan|Till|Til|Do|Кому|收件人|宛先|Vastaanottaja|Kime|받는 사람|Címzett|Komu",
    "cc": "Cc|Kopie|Copie|CC|Kopia|Копия|抄送|副本|Kopio|Bilgi",
    "subject": "Subject|Betreff|Objet|Asunto|Assunto|Onderwerp|Ämne|Emne|Oggetto|Temat|Тема|主题|主旨|件名|Aihe|Konu|"
               "제목|Tárgy|Předmět",
}
_LABEL = {kind: re.compile(rf"\*?\s*(?:{words})\s*\*?\s*[:：]", re.IGNORECASE) for kind, words in _LABELS.items()}
_ORIGINAL_MESSAGE = re.compile(
    r"-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|Message d'origine|Mensaje original|"
    r"Mensagem original|Messaggio originale|Oorspronkelijk bericht|Origineel bericht|Originalmeddelande|"
    r"Ursprungligt meddelande|Opprinnelig melding|Oprindelig meddelelse|Wiadomość oryginalna|Исходное сообщение|"
    r"Alkuperäinen viesti|原始邮件|原始郵件|元のメッセージ|Původní zpráva|Eredeti üzenet|Orijinal ileti)\s*-{2,}",
    re.IGNORECASE)
_SEPARATOR = re.compile(r"_{10,}|-{10,}")
_MOBILE_SIGNATURE = re.compile(
    r"(?:Sent from my .{1,60}|Sent from (?:Mail|Outlook|Yahoo Mail|AOL|Proton Mail|Samsung|my ).{0,60}"
    r"|Get Outlook for (?:iOS|Android)|Von meinem .{1,40} gesendet|Gesendet von (?:meinem )?.{1,40}"
    r"|Envoyé (?:de|depuis) (?:mon|ma) .{1,40}|Obtenir Outlook pour (?:iOS|Android)"
    r"|Enviado (?:desde|do|de) (?:mi|meu|o meu) .{1,40}|Obtener Outlook para (?:iOS|Android)"
    r"|Inviato da .{1,40}|(?:Ottieni|Scarica) Outlook per (?:iOS|Android)"
    r"|Verzonden (?:met|vanaf|van) mijn .{1,40}|Verstuurd (?:met|vanaf|van) mijn .{1,40}"
    r"|Skickat från (?:min|mitt) .{1,40}|Sendt fra (?:min|mitt|mi) .{1,40}|Hent Outlook for (?:iOS|Android)"
    r"|Wysłane z (?:mojego )?.{1,40}|Отправлено (?:с|из) .{1,40}|.{1,30}から送信"
    r"|(?:发自|來自|寄自)我的.{1,30}|从我的.{1,30}发送)",
    re.IGNORECASE)
_TRAILING_LINK = re.compile(r"\s*<(?:https?|mailto):[^<>\s]*>$")  # "Get Outlook for iOS<https://aka.ms/...>"
_QUOTED = re.compile(r"\s{0,3}>")
_WS = re.compile(r"[\s\u00a0\u202f\u2007\u200b]+")


def _norm(line: str) -> str:
    return _WS.sub(" ", line).replace("：", ":").strip()


def _is_quoted(line: str) -> bool:
    return bool(_QUOTED.match(line))


def _is_blank(line: str) -> bool:
    return not _norm(line)


class _View:
    """Lines with their normalized form, quote flag and header labels computed once (long mails)."""

    __slots__ = ("norm", "quoted", "_labels")

    def __init__(self, lines: list[str]) -> None:
        self.norm = [_norm(line) for line in lines]
        self.quoted = [bool(_QUOTED.match(line)) for line in lines]
        self._labels: dict[int, frozenset[str]] = {}

    def labels(self, index: int) -> frozenset[str]:
        found = self._labels.get(index)
        if found is None:
            head = self.norm[index][:60]
            found = frozenset(k for k, rx in _LABEL.items() if rx.match(head)) if ":" in head else frozenset()
            self._labels[index] = found
        return found

    def next_content(self, index: int) -> int | None:
        for i in range(index, len(self.norm)):
            if self.norm[i]:
                return i
        return None


def _attribution_at(view: _View, end: int) -> int | None:
    """If an attribution ends on line ``end``, the index of its first line (it may wrap over three)."""
    line = view.norm[end]
    if not line.endswith(":") or view.quoted[end] or len(line) > 300:
        return None
    for back in (1, 2):  # a wrapped header: the first line must look like the start of one
        start = end - back
        if start < 0 or any(not view.norm[i] or view.quoted[i] for i in range(start, end)):
            break
        if any(_SENTENCE_END.search(view.norm[i]) for i in range(start, end)):
            break  # the line above is a sentence of the reply, not the first half of a header
        joined = " ".join(view.norm[start:end + 1])
        if (len(joined) <= 300 and _ATTRIBUTION_START.match(joined) and not _LEAD_WORD.match(line)
                and _ATTRIBUTION.fullmatch(joined) and _HAS_DATE_OR_ADDRESS.search(joined)):
            return start
    if not _ATTRIBUTION.fullmatch(line):
        return None
    following = view.next_content(end + 1)
    if _HAS_DATE_OR_ADDRESS.search(line) or (following is not None and view.quoted[following]):
        return end
    return None


def _outlook_block_at(view: _View, index: int) -> bool:
    """A "From: … Sent: … To: … Subject: …" header block starts on ``index``."""
    if "from" not in view.labels(index):
        return False
    seen: set[str] = set()
    for i in range(index + 1, min(index + 12, len(view.norm))):
        seen |= view.labels(i) & {"sent", "to", "cc", "subject"}
    return len(seen) >= 2 and ("sent" in seen or "subject" in seen)


def find_quote_start(lines: list[str]) -> tuple[int, int, str] | None:
    """(first line, line after the header, kind) of the earliest quoted-history header, or None.
    kind is "attribution" (an "On … wrote:" line) or "history" (Outlook-style: all that follows is
    the old message)."""
    return _find_quote_start(_View(lines))


def _find_quote_start(view: _View) -> tuple[int, int, str] | None:
    for index, norm in enumerate(view.norm):
        if view.quoted[index] or not norm:
            continue
        if norm.startswith("--") and _ORIGINAL_MESSAGE.fullmatch(norm):
            return index, index + 1, "history"
        if _outlook_block_at(view, index):
            start = index
            for back in (1, 2):  # an underscore or dash rule just above belongs to the header
                if index - back >= 0 and _SEPARATOR.fullmatch(view.norm[index - back]):
                    start = index - back
                    break
                if index - back >= 0 and view.norm[index - back]:
                    break
            return start, index + 1, "history"
        start = _attribution_at(view, index)
        if start is not None:
            return start, index + 1, "attribution"
    return None


def find_signature_start(lines: list[str]) -> int | None:
    """The first line of a marked signature: the "-- " line (RFC 3676), a bare "--" line with a short
    block under it, or a "Sent from my …" line near the end."""
    content = [i for i, line in enumerate(lines) if not _is_blank(line)]
    for n, i in enumerate(content):
        if lines[i].rstrip("\r\n") == "-- " or (lines[i].strip() == "--" and len(content) - n - 1 <= 6):
            return i
    for i in content[-3:]:
        norm = _TRAILING_LINK.sub("", _norm(lines[i]))
        if len(norm) <= 80 and _MOBILE_SIGNATURE.fullmatch(norm):
            return i
    return None


def _tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if line or (out and out[-1]):  # at most one blank line in a row
            out.append(line)
    return "\n".join(out).strip()


def find_history(lines: list[str]) -> tuple[int, int, bool] | None:
    """(header's first line, line after it, interleaved) of the quoted history. Interleaved: an
    "On … wrote:" header followed by quotes with answers between them, so only quotes go."""
    view = _View(lines)
    found = _find_quote_start(view)
    if found is None:
        return None
    start, after, kind = found
    following = view.next_content(after)
    interleaved = (kind == "attribution" and following is not None and view.quoted[following]
                   and any(view.norm[i] and not view.quoted[i] for i in range(following, len(lines))))
    return start, after, interleaved


def strip_reply(text: str) -> str:
    if not text or not text.strip():
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found = find_history(lines)
    if found is None:
        kept = lines
    else:
        start, after, interleaved = found
        kept = lines[:start] + (lines[after:] if interleaved else [])
    kept = [line for line in kept if not _is_quoted(line)]
    signature = find_signature_start(kept)
    new = _tidy(kept if signature is None else kept[:signature])
    return new or text  # nothing new (only a quote or a signature): keep the message whole


# --- HTML ---------------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_BLOCK_TAGS = {"address", "article", "aside", "blockquote", "body", "center", "dd", "div", "dl", "dt", "fieldset",
               "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
               "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
_INVISIBLE_TAGS = {"script", "style", "head", "title", "template"}
# Everything from these on is the previous message (Outlook puts the quoted body *after* the header div).
_TRUNCATE_IDS = {"divrplyfwdmsg", "x_divrplyfwdmsg", "appendonsend", "x_appendonsend",
                 "mail-editor-reference-message-container"}
_TRUNCATE_CLASSES = {"outlookmessageheader"}
_DROP_CLASSES = {"yahoo_quoted", "gmail_attr", "moz-cite-prefix", "protonmail_quote", "gmail_signature",
                 "gmail_signature_prefix", "moz-signature"}
_DROP_IDS = {"signature", "applemailsignature", "ms-outlook-mobile-signature", "ymail_android_signature"}
_OUTLOOK_BORDER = re.compile(r"border-top\s*:\s*solid", re.IGNORECASE)
_QUOTE_MARK = "data-swarmdesk-quote"

Segment = tuple[etree._Element, str]  # (element, "text" | "tail")


def _classes(el: etree._Element) -> set[str]:
    return set((el.get("class") or "").lower().split())


def _drop(el: etree._Element) -> None:
    """Remove an element but keep the text that follows it (its tail)."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _truncate_from(body: etree._Element, node: etree._Element, keep_node: bool = False) -> None:
    """Remove ``node`` (or only what follows it, with ``keep_node``) and everything after it in
    document order; its ancestors keep what came before."""
    if node is body:
        body.text = None
        for child in list(body):
            body.remove(child)
        return
    current = node
    if keep_node:
        current.tail = None
    while current is not body and current.getparent() is not None:
        parent = current.getparent()
        for sibling in list(current.itersiblings()):
            parent.remove(sibling)
        if current is node and not keep_node:
            parent.remove(current)  # lxml drops the tail with it
        elif current is not node:
            current.tail = None
        current = parent


def _lines(body: etree._Element) -> list[tuple[str, list[Segment]]]:
    """The body as text lines (split at block elements and <br>), each with the segments it is made of."""
    lines: list[tuple[list[str], list[Segment]]] = [([], [])]
    invisible = 0
    for event, el in etree.iterwalk(body, events=("start", "end")):
        tag = el.tag
        if event == "start":
            if tag in _INVISIBLE_TAGS:
                invisible += 1
            if (tag in _BLOCK_TAGS or tag == "br") and lines[-1][1]:
                lines.append(([], []))
            if el.text and not invisible:
                lines[-1][0].append(el.text)
                lines[-1][1].append((el, "text"))
        else:
            if tag in _INVISIBLE_TAGS:
                invisible -= 1
            if tag in _BLOCK_TAGS and lines[-1][1]:
                lines.append(([], []))
            if el.tail and not invisible and el is not body:
                lines[-1][0].append(el.tail)
                lines[-1][1].append((el, "tail"))
    return [("".join(parts), segments) for parts, segments in lines]


def _texts(lines: list[tuple[str, list[Segment]]]) -> list[str]:
    return [text for text, _ in lines]


def _has_content(el: etree._Element) -> bool:
    if el.tag == "img" or next(el.iter("img"), None) is not None:
        return True
    return any(_norm(t) for t in el.xpath(".//text()[not(ancestor::script or ancestor::style)]"))


def _trim_trailing(body: etree._Element) -> None:
    node = body
    while len(node):
        last = node[-1]
        if _norm(last.tail or ""):
            return
        if _has_content(last):
            node = last
            continue
        node.remove(last)


def _is_quote_blockquote(el: etree._Element) -> bool:
    return el.tag == "blockquote" and ((el.get("type") or "").lower() == "cite" or "gmail_quote" in _classes(el))


def _structural_pass(body: etree._Element) -> None:
    """Remove what clients mark as history or signature. Quoted blockquotes become empty ">"
    placeholders, so the line pass can still tell an inline reply from a top-posted one."""
    for junk in body.xpath(".//comment() | .//processing-instruction()"):
        _drop(junk)
    marked = body.xpath(".//*[@id or @class or @style or @data-smartmail or self::blockquote]")
    for el in marked:
        ident = (el.get("id") or "").lower()
        if (ident in _TRUNCATE_IDS or _classes(el) & _TRUNCATE_CLASSES
                or (el.tag == "div" and _OUTLOOK_BORDER.search(el.get("style") or "")
                    and _LABEL["from"].match(_norm("".join(el.itertext())[:200])))):
            _truncate_from(body, el)
            break
    quotes = set()
    for el in body.xpath(".//*[@id or @class or @data-smartmail or self::blockquote]"):
        if el.getparent() is None or any(a in quotes for a in el.iterancestors("blockquote")):
            continue
        if _is_quote_blockquote(el):
            quotes.add(el)
        elif (_classes(el) & _DROP_CLASSES or (el.get("id") or "").lower() in _DROP_IDS
              or el.get("data-smartmail") == "gmail_signature"):
            _drop(el)
    for el in quotes:
        if el.getparent() is not None:
            tail = el.tail
            el.clear()
            el.text, el.tail = ">", tail
            el.set(_QUOTE_MARK, "1")


def _drop_quote_placeholders(body: etree._Element) -> None:
    for el in body.xpath(f".//blockquote[@{_QUOTE_MARK}]"):
        _drop(el)
    for el in body.xpath(".//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"):
        if el.getparent() is not None and not _has_content(el):  # Gmail's container, unless answers remain
            _drop(el)


def _cut_at_line(body: etree._Element, segments: list[Segment]) -> None:
    el, kind = segments[0]
    _truncate_from(body, el, keep_node=(kind == "tail"))


def strip_reply_html(html: str) -> str:
    if not html or not html.strip():
        return html
    try:
        root = etree.fromstring(_XML_DECLARATION.sub("", html, count=1), etree.HTMLParser())
    except (etree.LxmlError, ValueError):
        return html
    body = root.find("body") if root is not None else None
    if body is None:
        return html
    try:
        _strip_body(body)
    except RecursionError:
        return html
    if not _has_content(body):
        return html
    inner = _html.escape(body.text, quote=False) if body.text else ""
    return (inner + "".join(etree.tostring(child, encoding="unicode", method="html") for child in body)).strip()


def _strip_body(body: etree._Element) -> None:
    _structural_pass(body)
    lines = _lines(body)
    found = find_history(_texts(lines))
    if found is not None:
        start, after, interleaved = found
        if interleaved:  # answers between the quotes: drop only the header line
            for _, segments in lines[start:after]:
                for el, part in segments:
                    setattr(el, part, None)
        else:
            _cut_at_line(body, lines[start][1])
    _drop_quote_placeholders(body)

    lines = _lines(body)
    texts = _texts(lines)
    signature = find_signature_start(texts)
    if signature is not None and any(_norm(text) for text in texts[:signature]):
        _cut_at_line(body, lines[signature][1])
    _trim_trailing(body)
