"""The admin's own titles ("Додати %s", "Оберіть %s для зміни") put each model's name in the
accusative: a name whose accusative differs from its nominative (кампанія -> кампанію) gets a
title of its own, the others are chosen so that the two are the same."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

TITLES = {
    "uk": {
        ("campaign", "changelist"): "Оберіть кампанію для зміни",
        ("campaign", "add"): "Додати кампанію",
        ("message", "changelist"): "Виберіть повідомлення щоб змінити",
        ("deliveryreport", "changelist"): "Вибрати звіт про доставку для перегляду",
        ("optout", "changelist"): "Виберіть запис стоп-листа щоб змінити",
        ("optout", "add"): "Додати запис стоп-листа",
        ("webhookendpoint", "changelist"): "Виберіть вебхук щоб змінити",
        ("webhookendpoint", "add"): "Додати вебхук",
        ("webhookdelivery", "changelist"): "Вибрати запис доставки вебхука для перегляду",
    },
    "ru": {
        ("campaign", "changelist"): "Выберите кампанию для изменения",
        ("campaign", "add"): "Добавить кампанию",
        ("message", "changelist"): "Выберите сообщение для изменения",
        ("deliveryreport", "changelist"): "Выберите отчёт о доставке для просмотра",
        ("optout", "changelist"): "Выберите запись стоп-листа для изменения",
        ("optout", "add"): "Добавить запись стоп-листа",
        ("webhookendpoint", "changelist"): "Выберите адрес вебхука для изменения",
        ("webhookendpoint", "add"): "Добавить адрес вебхука",
        ("webhookdelivery", "changelist"): "Выберите запись доставки вебхука для просмотра",
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lang", "page", "title"),
    [(lang, page, title) for lang, pages in TITLES.items() for page, title in pages.items()],
)
def test_admin_titles_read_right(admin_client, lang, page, title):
    model, view = page
    # The locale middleware leaves the request's language active: give it back afterwards.
    with translation.override(lang):
        response = admin_client.get(
            reverse(f"admin:django_smsclub_{model}_{view}"), HTTP_ACCEPT_LANGUAGE=lang
        )
    assert response.status_code == 200
    [h1] = re.findall(r"<h1>(.*?)</h1>", response.content.decode(), re.S)
    assert h1.strip() == title
