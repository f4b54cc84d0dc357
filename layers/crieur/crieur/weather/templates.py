"""French texts for a vigilance event: what, where, when (Europe/Paris), the official advice, a link.

The meaning of each colour is Météo-France's own definition. The advice is a sober condensation of
Météo-France's published "conseils de comportement" per phenomenon and colour (vigilance.meteofrance.fr),
with the national numbers it quotes (15, 115, Canicule info service 0 800 06 66 66). Times are written in
Paris wall time; a wall time that occurs twice (the night clocks go back) says which one it is.

The result is a plain WeatherMessage; the wiring to PublicationRequest (category weather, urgency,
expires_at, links) is the poller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

from crieur.weather.departments import departement_name, departement_with_article
from crieur.weather.diff import EventKind, VigilanceEvent
from crieur.weather.model import PARIS, Color, Phenomenon

VIGILANCE_URL: Final = "https://vigilance.meteofrance.fr"
CATEGORY: Final = "weather"
TITLE_MAX: Final = 140

_WEEKDAYS: Final = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS: Final = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

COLOR_MEANING: Final = {
    Color.ORANGE: (
        "Soyez très vigilant : des phénomènes dangereux sont prévus. Tenez-vous au courant de l'évolution de la "
        "situation et suivez les conseils de sécurité émis par les pouvoirs publics."
    ),
    Color.RED: (
        "Une vigilance absolue s'impose : des phénomènes dangereux d'intensité exceptionnelle sont prévus. "
        "Tenez-vous régulièrement au courant de l'évolution de la situation et respectez impérativement les "
        "consignes de sécurité émises par les pouvoirs publics."
    ),
}

_CO_HEATING: Final = (
    "N'utilisez pas pour vous chauffer des appareils non prévus pour cet usage et ne bouchez pas les aérations "
    "(risque d'intoxication au monoxyde de carbone)."
)
_WIRES: Final = "Ne touchez en aucun cas à des fils électriques tombés au sol."
_FLOODED_ROAD: Final = "Ne vous engagez en aucun cas, à pied ou en voiture, sur une voie inondée."
_AUTHORITIES: Final = "Conformez-vous aux consignes des autorités et préparez-vous à évacuer si elles le demandent."
_HEAT_COMMON: Final = (
    "Buvez de l'eau régulièrement sans attendre d'avoir soif, et mouillez-vous le corps.",
    "Évitez de sortir aux heures les plus chaudes et passez plusieurs heures par jour dans un lieu frais.",
    "Fermez fenêtres et volets le jour, aérez la nuit quand il fait plus frais.",
    "Évitez les efforts physiques, mangez normalement et ne buvez pas d'alcool.",
    "Prenez des nouvelles de vos proches, en particulier des personnes âgées, isolées ou fragiles.",
    "En cas de malaise, appelez le 15. Canicule info service : 0 800 06 66 66 (appel gratuit).",
)
_COLD_COMMON: Final = (
    "Évitez les expositions prolongées au froid et au vent, limitez les activités extérieures et les efforts.",
    "Habillez-vous chaudement, en plusieurs couches, et couvrez-vous la tête et les mains.",
    _CO_HEATING,
    "Prenez des nouvelles de vos proches, en particulier des personnes âgées, isolées ou fragiles.",
    "Si vous voyez une personne sans abri en difficulté, appelez le 115.",
)

ADVICE: Final[dict[Phenomenon, dict[Color, tuple[str, ...]]]] = {
    Phenomenon.VENT_VIOLENT: {
        Color.ORANGE: (
            "Limitez vos déplacements et renseignez-vous avant de partir.",
            "Ne vous promenez pas en forêt ni sur le littoral.",
            "En ville, soyez vigilant face aux chutes possibles d'objets divers.",
            "Rangez ou fixez les objets susceptibles d'être emportés.",
            "N'intervenez pas sur les toitures. " + _WIRES,
            "Installez les groupes électrogènes à l'extérieur des bâtiments.",
        ),
        Color.RED: (
            "Restez chez vous et évitez toute activité extérieure.",
            "Si vous devez absolument vous déplacer, soyez très prudent et empruntez les grands axes.",
            "Rangez ou fixez les objets susceptibles d'être emportés ; n'intervenez pas sur les toitures.",
            _WIRES,
            "Prévoyez des moyens d'éclairage de secours et une réserve d'eau potable.",
            "Installez les groupes électrogènes à l'extérieur des bâtiments.",
        ),
    },
    Phenomenon.PLUIE_INONDATION: {
        Color.ORANGE: (
            "Renseignez-vous avant tout déplacement, soyez très prudent et respectez les déviations.",
            _FLOODED_ROAD,
            "Ne descendez pas dans les sous-sols ni dans les parkings souterrains.",
            "Dans les zones habituellement inondables, mettez vos biens en sécurité et surveillez la montée des eaux.",
        ),
        Color.RED: (
            "Évitez tout déplacement ; si vous devez absolument partir, soyez très prudent.",
            _FLOODED_ROAD,
            "Mettez-vous à l'abri à l'étage ou sur un point haut ; ne descendez pas dans les sous-sols.",
            "N'allez pas chercher vos enfants à l'école : ils y sont en sécurité.",
            "Si l'eau menace votre logement, coupez l'électricité et le gaz.",
            _AUTHORITIES,
        ),
    },
    Phenomenon.ORAGES: {
        Color.ORANGE: (
            "À l'approche d'un orage, mettez vos biens en sécurité et abritez-vous dans un bâtiment en dur.",
            "Ne vous abritez pas sous les arbres et évitez les promenades en forêt.",
            "Évitez d'utiliser le téléphone et les appareils électriques.",
            "Signalez sans attendre les départs de feux dont vous seriez témoin.",
            "Dans les zones sensibles aux crues soudaines, prenez vos précautions face à la montée des eaux.",
        ),
        Color.RED: (
            "Évitez les déplacements ; si vous devez absolument partir, soyez très prudent.",
            "Mettez-vous à l'abri dans un bâtiment en dur, loin des arbres.",
            "Évitez d'utiliser le téléphone et les appareils électriques.",
            _FLOODED_ROAD,
            "Signalez sans attendre les départs de feux dont vous seriez témoin.",
            _AUTHORITIES,
        ),
    },
    Phenomenon.CRUES: {
        Color.ORANGE: (
            "Tenez-vous informé de l'évolution des crues sur vigicrues.gouv.fr.",
            _FLOODED_ROAD,
            "Respectez les déviations et les restrictions de circulation.",
            "Dans les zones habituellement inondables, mettez vos biens en sécurité et surveillez la montée des eaux.",
        ),
        Color.RED: (
            "Évitez tout déplacement dans les zones inondables.",
            _FLOODED_ROAD,
            "Mettez-vous à l'abri à l'étage ou sur un point haut.",
            "Si l'eau menace votre logement, coupez l'électricité et le gaz.",
            _AUTHORITIES,
            "Tenez-vous informé sur vigicrues.gouv.fr.",
        ),
    },
    Phenomenon.NEIGE_VERGLAS: {
        Color.ORANGE: (
            "Soyez très prudent si vous devez absolument vous déplacer ; privilégiez les transports en commun.",
            "Renseignez-vous sur les conditions de circulation et préparez votre itinéraire.",
            "Respectez les restrictions de circulation et facilitez le passage des engins de déneigement.",
            "Dégagez la neige et salez le trottoir devant chez vous.",
            _WIRES,
            _CO_HEATING,
        ),
        Color.RED: (
            "Restez chez vous et évitez tout déplacement.",
            "Si vous devez absolument partir, prévenez vos proches de votre trajet et emportez de quoi vous couvrir.",
            "Respectez les restrictions de circulation et les déviations.",
            _WIRES,
            "Installez les groupes électrogènes à l'extérieur des bâtiments. " + _CO_HEATING,
        ),
    },
    Phenomenon.CANICULE: {
        Color.ORANGE: _HEAT_COMMON,
        Color.RED: (
            "Tout le monde est exposé, même les personnes en bonne santé.",
            *_HEAT_COMMON,
            "Suivez les consignes des autorités : des mesures exceptionnelles peuvent être prises.",
        ),
    },
    Phenomenon.GRAND_FROID: {
        Color.ORANGE: _COLD_COMMON,
        Color.RED: (
            "Évitez de sortir, en particulier les personnes âgées, les jeunes enfants et les personnes fragiles.",
            *_COLD_COMMON,
            "En cas de malaise, appelez le 15.",
        ),
    },
    Phenomenon.AVALANCHES: {
        Color.ORANGE: (
            "Consultez le bulletin d'estimation du risque d'avalanche et renseignez-vous auprès des professionnels "
            "de la montagne.",
            "Évitez le hors-piste et les randonnées en montagne.",
            "Respectez les consignes et les fermetures de pistes, de routes et d'itinéraires.",
        ),
        Color.RED: (
            "Évitez tout déplacement en montagne.",
            "Conformez-vous aux consignes des autorités : routes, itinéraires et zones habitées peuvent être "
            "fermés ou évacués.",
            "Tenez-vous informé auprès de votre mairie et des professionnels de la montagne.",
        ),
    },
    Phenomenon.VAGUES_SUBMERSION: {
        Color.ORANGE: (
            "Éloignez-vous du bord de mer : pas de promenade sur le littoral, les digues, les jetées ni les falaises.",
            "Ne prenez pas la mer ; évitez la baignade et les activités nautiques.",
            "Dans les zones habituellement submersibles, mettez vos biens en sécurité.",
            _FLOODED_ROAD,
        ),
        Color.RED: (
            "Restez chez vous ou mettez-vous à l'abri dans un bâtiment solide, à l'étage, loin du littoral.",
            "Évitez tout déplacement sur le littoral et ne prenez pas la mer.",
            _FLOODED_ROAD,
            _AUTHORITIES,
        ),
    },
}


@dataclass(frozen=True)
class WeatherLink:
    url: str
    label: str


@dataclass(frozen=True)
class WeatherMessage:
    """What to publish: PublicationRequest(title, body, category='weather', urgency, expires_at, links)."""

    title: str
    body: str
    urgency: Literal["normal", "high", "critical"]
    expires_at: datetime | None
    links: tuple[WeatherLink, ...]
    category: Literal["weather"] = "weather"


LINKS: Final = (WeatherLink(VIGILANCE_URL, "Carte de vigilance Météo-France"),)


# -- dates -------------------------------------------------------------------------------------------------------


def _day(day: date, *, with_year: bool = False) -> str:
    number = "1er" if day.day == 1 else str(day.day)
    year = f" {day.year}" if with_year else ""
    return f"{_WEEKDAYS[day.weekday()]} {number} {_MONTHS[day.month - 1]}{year}"


def _clock(local: datetime) -> str:
    """'14 h', '6 h 30'; '2 h 30 (heure d'été)' when that wall time happens twice (last Sunday of October)."""
    text = f"{local.hour} h" if local.minute == 0 else f"{local.hour} h {local.minute:02d}"
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() != local.utcoffset():
        text += " (heure d'été)" if local.dst() else " (heure d'hiver)"
    return text


def _end_parts(end: datetime) -> tuple[date, str]:
    """The end as (day, time); local midnight is 'minuit' at the end of the previous day."""
    local = end.astimezone(PARIS)
    if (local.hour, local.minute) == (0, 0):
        return local.date() - timedelta(days=1), "minuit"
    return local.date(), _clock(local)


def format_moment(moment: datetime) -> str:
    """'le lundi 7 juillet à minuit', 'le dimanche 29 mars à 3 h 30'."""
    day, clock = _end_parts(moment)
    return f"le {_day(day)} à {clock}"


def format_period(begin: datetime | None, end: datetime | None, *, now: datetime | None = None) -> str:
    """'du dimanche 6 juillet à 10 h au lundi 7 juillet à minuit', 'le dimanche 29 mars, de 1 h 30 à 3 h 30',
    'jusqu'au lundi 7 juillet à 6 h' once it has begun, in Europe/Paris wall time."""
    started = begin is None or (now is not None and begin <= now)
    if end is None:
        if started or begin is None:
            return "jusqu'à nouvel ordre"
        local = begin.astimezone(PARIS)
        return f"à partir du {_day(local.date())} à {_clock(local)}"
    end_day, end_clock = _end_parts(end)
    if started or begin is None:
        return f"jusqu'au {_day(end_day)} à {end_clock}"
    local = begin.astimezone(PARIS)
    if local.date() == end_day:
        return f"le {_day(end_day)}, de {_clock(local)} à {end_clock}"
    with_year = local.year != end_day.year
    return (
        f"du {_day(local.date(), with_year=with_year)} à {_clock(local)} "
        f"au {_day(end_day, with_year=with_year)} à {end_clock}"
    )


# -- messages ----------------------------------------------------------------------------------------------------


def _place(departement: str) -> str:
    return f"{departement_name(departement)} ({departement})"


def _subject(departement: str) -> str:
    return f"{departement_with_article(departement)} ({departement})"


def _urgency(color: Color) -> Literal["normal", "high", "critical"]:
    return "critical" if color is Color.RED else "high" if color is Color.ORANGE else "normal"


def _title(text: str) -> str:
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1].rstrip() + "…"


def render(event: VigilanceEvent, *, now: datetime | None = None) -> WeatherMessage:
    """The message for any event: alert_message for new/upgrade/update, end_message for end."""
    return end_message(event) if event.kind is EventKind.END else alert_message(event, now=now)


def alert_message(event: VigilanceEvent, *, now: datetime | None = None) -> WeatherMessage:
    if event.kind is EventKind.END or not event.color.is_alert or event.phenomenon is Phenomenon.UNKNOWN:
        raise ValueError(f"pas une alerte orange ou rouge d'un phénomène connu : {event.kind} {event.color}")
    color, phenomenon, departement = event.color, event.phenomenon, event.departement
    what = f"vigilance {color.label} {phenomenon.in_sentence}"
    period = format_period(event.begin, event.end, now=now)
    previous = event.previous_color
    if event.kind is EventKind.NEW:
        title = f"Vigilance {color.label} {phenomenon.in_sentence} : {_place(departement)}"
        lead = f"Météo-France place {_subject(departement)} en {what} {period}."
    elif event.kind is EventKind.UPGRADE:
        title = f"Vigilance {color.label} {phenomenon.in_sentence} : {_place(departement)}"
        lead = (
            f"Météo-France relève la vigilance {phenomenon.in_sentence} de l'{(previous or Color.ORANGE).label} "
            f"au {color.label} pour {_subject(departement)} : {what} {period}."
        )
    elif previous is not None and previous.rank > color.rank:
        title = f"Vigilance {phenomenon.in_sentence} abaissée en {color.label} : {_place(departement)}"
        lead = (
            f"Météo-France abaisse la vigilance {phenomenon.in_sentence} du {previous.label} à l'{color.label} "
            f"pour {_subject(departement)} : {what} {period}."
        )
    else:
        title = f"Vigilance {color.label} {phenomenon.in_sentence} : {_place(departement)}, mise à jour"
        lead = f"Mise à jour de Météo-France : {what} pour {_subject(departement)} {period}."
    paragraphs = [lead]
    if color is Color.RED and event.until is not None and event.end is not None and event.until > event.end:
        paragraphs.append(
            f"La vigilance reste ensuite orange jusqu'au {format_moment(event.until).removeprefix('le ')}."
        )
    paragraphs.append(COLOR_MEANING[color])
    advice = ADVICE.get(phenomenon, {}).get(color, ())
    if advice:
        paragraphs.append("Conseils :\n" + "\n".join(f"- {line}" for line in advice))
    paragraphs.append(f"Carte et bulletins de vigilance : {VIGILANCE_URL}")
    return WeatherMessage(
        title=_title(title),
        body="\n\n".join(paragraphs),
        urgency=_urgency(color),
        expires_at=event.until,
        links=LINKS,
    )


def end_message(event: VigilanceEvent) -> WeatherMessage:
    """'Fin de vigilance orange canicule : …'. Urgency normal; no expiry (the caller may set one)."""
    if event.kind is not EventKind.END:
        raise ValueError(f"pas une fin de vigilance : {event.kind}")
    ended = event.previous_color if event.previous_color is not None else Color.ORANGE
    departement, phenomenon = event.departement, event.phenomenon
    what = f"vigilance {ended.label} {phenomenon.in_sentence}"
    title = f"Fin de vigilance {ended.label} {phenomenon.in_sentence} : {_place(departement)}"
    if event.reason == "expired" and event.until is not None:
        lead = f"La {what} pour {_subject(departement)} a pris fin {format_moment(event.until)}."
    else:
        lead = f"Météo-France lève la {what} pour {_subject(departement)}."
    paragraphs = [lead]
    if event.color is Color.YELLOW:
        paragraphs.append(
            "Le département reste en vigilance jaune : soyez attentif si vous pratiquez des activités exposées "
            "au risque météorologique."
        )
    paragraphs.append("Restez prudent : les conséquences du phénomène peuvent encore se faire sentir.")
    paragraphs.append(f"Carte et bulletins de vigilance : {VIGILANCE_URL}")
    return WeatherMessage(
        title=_title(title), body="\n\n".join(paragraphs), urgency="normal", expires_at=None, links=LINKS
    )
