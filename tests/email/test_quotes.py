"""Reply stripping: only the new part of a reply survives, for each major client and language."""

from __future__ import annotations

import pytest

from swarmdesk.channels.email.quotes import strip_reply, strip_reply_html
from tests.email import html_words, parse_fixture, words

# (fixture, the exact new text of the reply)
CLIENT_REPLIES = [
    ("gmail_en.eml",
     "Thanks, the reset link worked. \U0001F642\n\n"
     "Could you also update my billing address to 12 Rue de la Paix, Paris?"),
    ("outlook_desktop_de.eml",
     "Hallo,\n\ndie Rechnung für Januar enthält einen Fehler: der Betrag müsste 120 € sein, nicht 210 €.\n\n"
     "Viele Grüße\nJörg Müller"),
    ("outlook_ios_en.eml", "Yes, please cancel the order. I'll pick it up at the café instead."),
    ("outlook_android_it.eml", "Sì, confermo l'appuntamento di giovedì alle 15."),
    ("apple_mail_fr.eml",
     "Bonjour,\n\nVoici une capture d’écran de l’erreur. Ça arrive à chaque connexion.\n\nCordialement,\nChloé"),
    ("iphone_es.eml", "Perfecto, ya puedo entrar. ¡Muchas gracias!"),
    ("android_pt.eml", "Obrigado! O reembolso já apareceu na minha conta."),
    ("thunderbird_nl.eml",
     "Dank voor de update. Kunt u de pakketten op vrijdag leveren in plaats van donderdag?\n\n"
     "Met vriendelijke groet,\nJan"),
    ("thunderbird_inline_en.eml", "Version 5.2.1 on Android 14.\n\nYes, on Wi-Fi and on mobile data."),
    ("yahoo_en.eml", 'Hi, the tracking number still shows "label created". Can you check with the courier?\nDana'),
    ("ja_iso2022jp.eml", "お世話になっております。\n請求書の再発行をお願いできますでしょうか。\n\n山田"),
    ("ja_shift_jis.eml", "承知いたしました。\n① 明日までに対応します。"),
    ("ru_koi8r.eml", "Здравствуйте!\nЗаказ получил, всё в порядке. Спасибо."),
    ("zh_gb2312.eml", "您好，\n\n发票抬头需要改成“北京朱镕科技有限公司”，谢谢。"),
]


@pytest.mark.parametrize(("name", "expected"), CLIENT_REPLIES, ids=[c[0] for c in CLIENT_REPLIES])
def test_plain_text_part_is_stripped_to_the_new_text(name: str, expected: str) -> None:
    assert strip_reply(parse_fixture(name).text) == expected


HTML_REPLIES = [(name, expected) for name, expected in CLIENT_REPLIES if parse_fixture(name).html is not None]


@pytest.mark.parametrize(("name", "expected"), HTML_REPLIES, ids=[c[0] for c in HTML_REPLIES])
def test_html_part_is_stripped_to_the_new_text(name: str, expected: str) -> None:
    html = parse_fixture(name).html
    assert html is not None
    assert html_words(strip_reply_html(html)) == words(expected)


def test_every_client_fixture_with_html_is_covered() -> None:
    assert {n for n, _ in HTML_REPLIES} == {
        "gmail_en.eml", "outlook_desktop_de.eml", "outlook_ios_en.eml", "outlook_android_it.eml",
        "apple_mail_fr.eml", "iphone_es.eml", "android_pt.eml", "thunderbird_nl.eml",
        "thunderbird_inline_en.eml", "yahoo_en.eml", "zh_gb2312.eml"}


def test_stripped_html_keeps_markup_and_inline_images_but_no_quote_containers() -> None:
    html = strip_reply_html(parse_fixture("apple_mail_fr.eml").html or "")
    assert 'src="cid:E3B0C442-98FC-4C14-9AFB-F4C8996FB924@home"' in html
    assert "blockquote" not in html
    gmail = strip_reply_html(parse_fixture("gmail_en.eml").html or "")
    assert "gmail_quote" not in gmail and "gmail_signature" not in gmail and "<div" in gmail
    outlook = strip_reply_html(parse_fixture("outlook_ios_en.eml").html or "")
    assert "divRplyFwdMsg" not in outlook and "<hr" not in outlook and "Outlook for iOS" not in outlook


# A reply line, then the quote header each client writes in each language, then the quoted text.
ATTRIBUTIONS = {
    "en-gmail": "On Mon, Jan 1, 2024 at 10:00 AM Example Support <support@help.example.com> wrote:",
    "en-apple": "On 1 Jan 2024, at 10:00, Example Support <support@help.example.com> wrote:",
    "en-yahoo": "On Monday, January 1, 2024, 10:00:00 AM GMT, Example Support <support@help.example.com> wrote:",
    "en-thunderbird": "On 1/1/24 10:00, Example Support wrote:",
    "de": "Am Mo., 1. Jan. 2024 um 10:00 Uhr schrieb Example Support <support@help.example.com>:",
    "de-apple": "Am 01.01.2024 um 10:00 schrieb Example Support <support@help.example.com>:",
    "fr": "Le lun. 1 janv. 2024 à 10:00, Example Support <support@help.example.com> a écrit :",
    "fr-nbsp": "Le 1 janv. 2024 à 10:00, Example Support <support@help.example.com> a écrit\u00a0:",
    "es": "El lun, 1 ene 2024 a las 10:00, Example Support (<support@help.example.com>) escribió:",
    "pt": "Em seg., 1 de jan. de 2024 às 10:00, Example Support <support@help.example.com> escreveu:",
    "it": "Il giorno lun 1 gen 2024 alle ore 10:00 Example Support <support@help.example.com> ha scritto:",
    "nl": "Op ma 1 jan. 2024 om 10:00 schreef Example Support <support@help.example.com>:",
    "nl-forum": "Op 1 jan. 2024, om 10:00 heeft Example Support het volgende geschreven:",
    "sv": "Den mån 1 jan. 2024 kl 10:00 skrev Example Support <support@help.example.com>:",
    "no": "man. 1. jan. 2024 kl. 10:00 skrev Example Support <support@help.example.com>:",
    "da": "Den man. 1. jan. 2024 kl. 10.00 skrev Example Support <support@help.example.com>:",
    "pl": "pon., 1 sty 2024 o 10:00 Example Support <support@help.example.com> napisał(a):",
    "pl-thunderbird": "W dniu 1.01.2024 o 10:00, Example Support pisze:",
    "ru": "пн, 1 янв. 2024 г. в 10:00, Example Support <support@help.example.com> написал(а):",
    "ru-gmail": "пн, 1 янв. 2024 г. в 10:00, Example Support <support@help.example.com>:",
    "ja-apple": "2024/01/01 10:00、Example Support <support@help.example.com>のメール:",
    "ja-outlook": "2024年1月1日 10:00 Example Support <support@help.example.com> のメッセージ:",
    "ja-gmail": "2024年1月1日(月) 10:00 Example Support <support@help.example.com>:",
    "ja-english": "On 2024/01/01 10:00, Example Support wrote:",
    "zh-cn": "Example Support <support@help.example.com> 于2024年1月1日周一 10:00写道：",
    "zh-tw": "Example Support <support@help.example.com> 於 2024年1月1日 週一 上午10:00寫道：",
}


@pytest.mark.parametrize("header", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_quote_header_in_each_language_starts_the_history(header: str) -> None:
    text = f"Here is my answer.\nSecond line.\n\n{header}\n\n> The earlier message\n> over two lines\n"
    assert strip_reply(text) == "Here is my answer.\nSecond line."


@pytest.mark.parametrize("header", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_quote_header_in_each_language_is_recognised_in_html_without_structure(header: str) -> None:
    html = (f"<div>Here is my answer.</div><div><br></div><div>{header.replace('<', '&lt;').replace('>', '&gt;')}"
            f"</div><div>The earlier message, not in a blockquote</div>")
    assert html_words(strip_reply_html(html)) == "Here is my answer."


def test_gmail_attribution_wrapped_over_two_lines() -> None:
    text = ("Sounds good.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Example Support <\n"
            "support@help.example.com> wrote:\n\n> Shall we ship it?\n")
    assert strip_reply(text) == "Sounds good."


def test_attribution_wrapped_over_three_lines() -> None:
    text = ("Sounds good.\n\nOn Monday, January 1, 2024, 10:00:00 AM GMT,\nExample Support\n"
            "<support@help.example.com> wrote:\n> Shall we ship it?\n")
    assert strip_reply(text) == "Sounds good."


def test_a_sentence_above_the_attribution_is_not_taken_for_its_first_line() -> None:
    text = "On Monday I will call you.\nOn Mon, Jan 1, 2024 at 10:00 AM Sam <sam@x.example> wrote:\n> hi\n"
    assert strip_reply(text) == "On Monday I will call you."


OUTLOOK_BLOCKS = {
    "en": "From: Example Support <support@help.example.com>\nSent: Monday, January 1, 2024 10:00 AM\n"
          "To: Customer <c@example.org>\nSubject: Your ticket",
    "en-date": "From: Example Support\nDate: Monday, January 1, 2024 at 10:00\nTo: Customer\nSubject: Your ticket",
    "en-bold": "*From:* Example Support <support@help.example.com>\n*Sent:* Monday, January 1, 2024 10:00 AM\n"
               "*To:* Customer <c@example.org>\n*Subject:* Your ticket",
    "de": "Von: Example Support\nGesendet: Montag, 1. Januar 2024 10:00\nAn: Kunde\nBetreff: Ihr Ticket",
    "fr": "De : Example Support\nEnvoyé : lundi 1 janvier 2024 10:00\nÀ : Client\nObjet : Votre ticket",
    "es": "De: Example Support\nEnviado: lunes, 1 de enero de 2024 10:00\nPara: Cliente\nAsunto: Su ticket",
    "pt": "De: Example Support\nEnviado: segunda-feira, 1 de janeiro de 2024 10:00\nPara: Cliente\nAssunto: Ticket",
    "it": "Da: Example Support\nInviato: lunedì 1 gennaio 2024 10:00\nA: Cliente\nOggetto: Il ticket",
    "nl": "Van: Example Support\nVerzonden: maandag 1 januari 2024 10:00\nAan: Klant\nOnderwerp: Uw ticket",
    "sv": "Från: Example Support\nSkickat: den 1 januari 2024 10:00\nTill: Kund\nÄmne: Ditt ärende",
    "no": "Fra: Example Support\nSendt: mandag 1. januar 2024 10:00\nTil: Kunde\nEmne: Saken din",
    "pl": "Od: Example Support\nWysłano: poniedziałek, 1 stycznia 2024 10:00\nDo: Klient\nTemat: Zgłoszenie",
    "ru": "От: Example Support\nОтправлено: 1 января 2024 г. 10:00\nКому: Клиент\nТема: Ваша заявка",
    "ja": "差出人: Example Support\n送信日時: 2024年1月1日 10:00\n宛先: お客様\n件名: お問い合わせ",
    "zh": "发件人: Example Support\n发送时间: 2024年1月1日 10:00\n收件人: 客户\n主题: 您的工单",
}


@pytest.mark.parametrize("block", OUTLOOK_BLOCKS.values(), ids=OUTLOOK_BLOCKS.keys())
def test_outlook_header_block_in_each_language_starts_the_history(block: str) -> None:
    text = f"Please go ahead.\n\n{block}\n\nThe earlier message, not quoted.\n"
    assert strip_reply(text) == "Please go ahead."


def test_outlook_separator_line_above_the_header_block_goes_too() -> None:
    text = f"Please go ahead.\n________________________________\n{OUTLOOK_BLOCKS['en']}\n\nOld text\n"
    assert strip_reply(text) == "Please go ahead."


@pytest.mark.parametrize("marker", ["-----Original Message-----", "-----Ursprüngliche Nachricht-----",
                                    "----- Message d'origine -----", "-----Mensaje original-----",
                                    "-----Messaggio originale-----", "-----Oorspronkelijk bericht-----",
                                    "-----Исходное сообщение-----", "-----原始邮件-----"])
def test_original_message_marker_starts_the_history(marker: str) -> None:
    text = f"Approved.\n\n{marker}\nFrom: Sam\nSubject: Budget\n\nPlease approve.\n"
    assert strip_reply(text) == "Approved."


def test_from_line_alone_is_not_a_header_block() -> None:
    text = "From: the top of the page, click Settings.\nThen choose Billing.\n"
    assert strip_reply(text) == text.strip()


def test_inline_answers_between_quotes_are_kept() -> None:
    text = ("On Mon, Jan 1, 2024 at 10:00 AM Sam <sam@help.example.com> wrote:\n> Which plan are you on?\n\n"
            "The Pro plan.\n\n> Since when?\n> (roughly)\n\nSince March.\n")
    assert strip_reply(text) == "The Pro plan.\n\nSince March."


def test_quoted_lines_without_attribution_are_removed() -> None:
    assert strip_reply("> old question\nnew answer\n>> older\n") == "new answer"


def test_attribution_followed_by_unquoted_history_cuts_everything_after_it() -> None:
    text = "New text\n\nOn Mon, Jan 1, 2024, 10:00 AM, Sam <s@x.example> wrote:\n\nOld text that is not quoted\n"
    assert strip_reply(text) == "New text"


def test_name_wrote_without_date_needs_quoted_lines_after_it() -> None:
    assert strip_reply("Ok.\n\nSam wrote:\n> old\n") == "Ok."
    prose = "My colleague wrote:\nthe report is ready, see the attachment.\n"
    assert strip_reply(prose) == prose.strip()


@pytest.mark.parametrize("signature", [
    "-- \nAlice Example\nHead of Ops", "--\nAlice", "Sent from my iPhone", "Sent from my Android",
    "Sent from my Galaxy", "Get Outlook for iOS", "Get Outlook for Android<https://aka.ms/AAb9ysg>",
    "Sent from Yahoo Mail on Android", "Sent from Mail for Windows", "Von meinem iPhone gesendet",
    "Envoyé de mon iPhone", "Enviado desde mi iPhone", "Enviado do meu Android", "Inviato da iPhone",
    "Verzonden met mijn iPhone", "Skickat från min iPhone", "Sendt fra min iPhone", "Wysłane z mojego iPhone'a",
    "Отправлено с iPhone", "iPhoneから送信", "发自我的iPhone",
])
def test_signatures_are_removed(signature: str) -> None:
    assert strip_reply(f"Thanks, that fixed it.\n\n{signature}\n") == "Thanks, that fixed it."


def test_bare_double_dash_before_a_long_block_is_a_divider_not_a_signature() -> None:
    text = "Step one.\n--\n" + "\n".join(f"Step {n}." for n in range(2, 10))
    assert strip_reply(text) == text


def test_signature_marker_in_the_middle_of_text_is_not_a_mobile_signature() -> None:
    text = "Sent from my iPhone is what it says.\nThen three more lines.\nLine two.\nLine three.\nLine four.\n"
    assert strip_reply(text) == text.strip()


def test_signature_and_quote_together() -> None:
    text = "Yes.\n\n-- \nBob\n\nOn Mon, Jan 1, 2024 at 10:00 AM Sam <s@x.example> wrote:\n> ok?\n"
    assert strip_reply(text) == "Yes."


@pytest.mark.parametrize("text", [
    "> only a quote\n> nothing new\n",
    "On Mon, Jan 1, 2024 at 10:00 AM Sam <s@x.example> wrote:\n> only a quote\n",
    "-- \nJust a signature\n",
    "Sent from my iPhone\n",
])
def test_never_strips_the_whole_message(text: str) -> None:
    assert strip_reply(text) == text


def test_empty_and_blank_text_come_back_unchanged() -> None:
    assert strip_reply("") == ""
    assert strip_reply("  \n") == "  \n"


def test_crlf_line_endings() -> None:
    text = "Fine by me.\r\n\r\nOn Mon, Jan 1, 2024 at 10:00 AM Sam <s@x.example> wrote:\r\n> ok?\r\n"
    assert strip_reply(text) == "Fine by me."


# --- HTML ---------------------------------------------------------------------------------------

def test_html_gmail_inline_answers_inside_gmail_quote_are_kept() -> None:
    html = ('<div dir="ltr">See below.</div><div class="gmail_quote"><div class="gmail_attr">On Mon, Jan 1, 2024 '
            'at 10:00 AM Sam &lt;s@x.example&gt; wrote:<br></div><blockquote class="gmail_quote">Which plan?'
            '</blockquote><div>The Pro plan.</div><blockquote class="gmail_quote">Since when?</blockquote>'
            '<div>Since March.</div></div>')
    assert html_words(strip_reply_html(html)) == "See below. The Pro plan. Since March."


def test_html_outlook_reply_marker_works_in_a_language_without_text_rules() -> None:
    # Greek Outlook: the header labels are unknown to the text rules; the divRplyFwdMsg marker suffices
    html = ('<div dir="ltr">Ευχαριστώ πολύ!</div><hr style="display:inline-block;width:98%">'
            '<div id="divRplyFwdMsg" dir="ltr"><b>Από:</b> Example Support<br><b>Απεστάλη:</b> Δευτέρα<br>'
            '<b>Προς:</b> Νίκος<br><b>Θέμα:</b> Παραγγελία</div><div>Παλιό μήνυμα</div>')
    assert html_words(strip_reply_html(html)) == "Ευχαριστώ πολύ!"


def test_html_outlook_desktop_original_message_marker() -> None:
    html = ("<div>Approved.</div><div><br></div><div>-----Original Message-----<br>From: Sam<br>"
            "Sent: Monday, January 1, 2024 10:00 AM<br>To: Bob<br>Subject: Budget</div><div>Please approve.</div>")
    assert html_words(strip_reply_html(html)) == "Approved."


def test_html_outlook_for_mac_reference_container() -> None:
    html = ('<div>Thanks!</div><div id="mail-editor-reference-message-container"><div class="ms-outlook-mobile-'
            'reference-message"><b>From: </b>Sam<br><b>Date: </b>Monday<br></div>Old text</div>')
    assert html_words(strip_reply_html(html)) == "Thanks!"


def test_html_appendonsend_marks_the_end_of_the_reply() -> None:
    html = '<div>Will do.</div><div id="appendonsend"></div><hr><div>Old text without any header</div>'
    assert html_words(strip_reply_html(html)) == "Will do."


def test_html_signature_separator_line() -> None:
    html = "<div>Works now.</div><div>-- </div><div>Bob Smith<br>ACME Corp</div>"
    assert html_words(strip_reply_html(html)) == "Works now."


def test_html_apple_mail_signature_block_is_removed() -> None:
    html = '<div>Ok</div><div id="AppleMailSignature">Sent from my iPad</div>'
    assert html_words(strip_reply_html(html)) == "Ok"


@pytest.mark.parametrize("html", [
    '<blockquote type="cite">only a quote</blockquote>',
    '<div class="gmail_quote">On Mon, Jan 1, 2024 Sam wrote:<blockquote class="gmail_quote">x</blockquote></div>',
    '<div id="divRplyFwdMsg"><b>From:</b> Sam</div><div>Old</div>',
])
def test_html_never_strips_the_whole_message(html: str) -> None:
    assert strip_reply_html(html) == html


def test_html_with_only_an_image_is_kept() -> None:
    html = '<div><img src="cid:abc@x"></div><blockquote type="cite">old</blockquote>'
    assert strip_reply_html(html) == '<div><img src="cid:abc@x"></div>'


@pytest.mark.parametrize("html", ["", "   ", "<", "<?xml version='1.0' encoding='utf-8'?>", "\x00\x01"])
def test_html_degenerate_input_never_raises(html: str) -> None:
    assert isinstance(strip_reply_html(html), str)


def test_html_with_xml_declaration_is_parsed() -> None:
    html = ('<?xml version="1.0" encoding="utf-8"?><html><body><p>New</p>'
            '<blockquote type="cite">Old</blockquote></body></html>')
    assert html_words(strip_reply_html(html)) == "New"
