"""Metropolitan départements, and the geocodes MeteoAlarm uses for them.

Sources:
- Département codes and names: INSEE Code officiel géographique (the 96 metropolitan départements,
  2A/2B for Corsica; the Métropole de Lyon is counted with the Rhône, as Météo-France and NUTS do).
- NUTS 2021 (in force since 1 January 2021; identical for France to NUTS 2016): Eurostat's NUTS classification,
  Commission Delegated Regulation (EU) 2019/1755. Each NUTS 3 region of metropolitan France is exactly one
  département. Cross-checked against an independent public département → NUTS 3 table: all 96 agree.
- NUTS 2013 (regions before the 2016 regional reform, FR101…FR832): what the real MeteoAlarm France
  feed carries (FR714 Isère, FR717 Savoie, FR718 Haute-Savoie, FR821-FR823 in the 2022 capture in
  fixtures/weather/). Both vintages are accepted: no code means two different départements in them.
- EMMA_ID: MeteoAlarm's own area ids. Only the six seen in the real capture are listed; no public,
  verifiable complete table was found, and a guessed one could send an alert to the wrong département.
  Every real France entry and CAP area also carries its NUTS3 geocode, which is what the reader uses first.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# code: (name, name with its article as in "pour <…>")
_DEPARTEMENTS: Final[dict[str, tuple[str, str]]] = {
    "01": ("Ain", "l'Ain"),
    "02": ("Aisne", "l'Aisne"),
    "03": ("Allier", "l'Allier"),
    "04": ("Alpes-de-Haute-Provence", "les Alpes-de-Haute-Provence"),
    "05": ("Hautes-Alpes", "les Hautes-Alpes"),
    "06": ("Alpes-Maritimes", "les Alpes-Maritimes"),
    "07": ("Ardèche", "l'Ardèche"),
    "08": ("Ardennes", "les Ardennes"),
    "09": ("Ariège", "l'Ariège"),
    "10": ("Aube", "l'Aube"),
    "11": ("Aude", "l'Aude"),
    "12": ("Aveyron", "l'Aveyron"),
    "13": ("Bouches-du-Rhône", "les Bouches-du-Rhône"),
    "14": ("Calvados", "le Calvados"),
    "15": ("Cantal", "le Cantal"),
    "16": ("Charente", "la Charente"),
    "17": ("Charente-Maritime", "la Charente-Maritime"),
    "18": ("Cher", "le Cher"),
    "19": ("Corrèze", "la Corrèze"),
    "2A": ("Corse-du-Sud", "la Corse-du-Sud"),
    "2B": ("Haute-Corse", "la Haute-Corse"),
    "21": ("Côte-d'Or", "la Côte-d'Or"),
    "22": ("Côtes-d'Armor", "les Côtes-d'Armor"),
    "23": ("Creuse", "la Creuse"),
    "24": ("Dordogne", "la Dordogne"),
    "25": ("Doubs", "le Doubs"),
    "26": ("Drôme", "la Drôme"),
    "27": ("Eure", "l'Eure"),
    "28": ("Eure-et-Loir", "l'Eure-et-Loir"),
    "29": ("Finistère", "le Finistère"),
    "30": ("Gard", "le Gard"),
    "31": ("Haute-Garonne", "la Haute-Garonne"),
    "32": ("Gers", "le Gers"),
    "33": ("Gironde", "la Gironde"),
    "34": ("Hérault", "l'Hérault"),
    "35": ("Ille-et-Vilaine", "l'Ille-et-Vilaine"),
    "36": ("Indre", "l'Indre"),
    "37": ("Indre-et-Loire", "l'Indre-et-Loire"),
    "38": ("Isère", "l'Isère"),
    "39": ("Jura", "le Jura"),
    "40": ("Landes", "les Landes"),
    "41": ("Loir-et-Cher", "le Loir-et-Cher"),
    "42": ("Loire", "la Loire"),
    "43": ("Haute-Loire", "la Haute-Loire"),
    "44": ("Loire-Atlantique", "la Loire-Atlantique"),
    "45": ("Loiret", "le Loiret"),
    "46": ("Lot", "le Lot"),
    "47": ("Lot-et-Garonne", "le Lot-et-Garonne"),
    "48": ("Lozère", "la Lozère"),
    "49": ("Maine-et-Loire", "le Maine-et-Loire"),
    "50": ("Manche", "la Manche"),
    "51": ("Marne", "la Marne"),
    "52": ("Haute-Marne", "la Haute-Marne"),
    "53": ("Mayenne", "la Mayenne"),
    "54": ("Meurthe-et-Moselle", "la Meurthe-et-Moselle"),
    "55": ("Meuse", "la Meuse"),
    "56": ("Morbihan", "le Morbihan"),
    "57": ("Moselle", "la Moselle"),
    "58": ("Nièvre", "la Nièvre"),
    "59": ("Nord", "le Nord"),
    "60": ("Oise", "l'Oise"),
    "61": ("Orne", "l'Orne"),
    "62": ("Pas-de-Calais", "le Pas-de-Calais"),
    "63": ("Puy-de-Dôme", "le Puy-de-Dôme"),
    "64": ("Pyrénées-Atlantiques", "les Pyrénées-Atlantiques"),
    "65": ("Hautes-Pyrénées", "les Hautes-Pyrénées"),
    "66": ("Pyrénées-Orientales", "les Pyrénées-Orientales"),
    "67": ("Bas-Rhin", "le Bas-Rhin"),
    "68": ("Haut-Rhin", "le Haut-Rhin"),
    "69": ("Rhône", "le Rhône"),
    "70": ("Haute-Saône", "la Haute-Saône"),
    "71": ("Saône-et-Loire", "la Saône-et-Loire"),
    "72": ("Sarthe", "la Sarthe"),
    "73": ("Savoie", "la Savoie"),
    "74": ("Haute-Savoie", "la Haute-Savoie"),
    "75": ("Paris", "Paris"),
    "76": ("Seine-Maritime", "la Seine-Maritime"),
    "77": ("Seine-et-Marne", "la Seine-et-Marne"),
    "78": ("Yvelines", "les Yvelines"),
    "79": ("Deux-Sèvres", "les Deux-Sèvres"),
    "80": ("Somme", "la Somme"),
    "81": ("Tarn", "le Tarn"),
    "82": ("Tarn-et-Garonne", "le Tarn-et-Garonne"),
    "83": ("Var", "le Var"),
    "84": ("Vaucluse", "le Vaucluse"),
    "85": ("Vendée", "la Vendée"),
    "86": ("Vienne", "la Vienne"),
    "87": ("Haute-Vienne", "la Haute-Vienne"),
    "88": ("Vosges", "les Vosges"),
    "89": ("Yonne", "l'Yonne"),
    "90": ("Territoire de Belfort", "le Territoire de Belfort"),
    "91": ("Essonne", "l'Essonne"),
    "92": ("Hauts-de-Seine", "les Hauts-de-Seine"),
    "93": ("Seine-Saint-Denis", "la Seine-Saint-Denis"),
    "94": ("Val-de-Marne", "le Val-de-Marne"),
    "95": ("Val-d'Oise", "le Val-d'Oise"),
}

METROPOLITAN_DEPARTEMENTS: Final = frozenset(_DEPARTEMENTS)
"""The 96 metropolitan département codes: 01-19, 2A, 2B, 21-95 (there is no 20)."""

DEPARTEMENT_NAMES: Final = MappingProxyType({code: name for code, (name, _) in _DEPARTEMENTS.items()})

# NUTS 2021 (= NUTS 2016 for France): département → NUTS 3.
_NUTS_2021: Final[dict[str, str]] = {
    # FR1 Île-de-France
    "75": "FR101", "77": "FR102", "78": "FR103", "91": "FR104",
    "92": "FR105", "93": "FR106", "94": "FR107", "95": "FR108",
    # FRB Centre-Val de Loire
    "18": "FRB01", "28": "FRB02", "36": "FRB03", "37": "FRB04", "41": "FRB05", "45": "FRB06",
    # FRC Bourgogne-Franche-Comté
    "21": "FRC11", "58": "FRC12", "71": "FRC13", "89": "FRC14",
    "25": "FRC21", "39": "FRC22", "70": "FRC23", "90": "FRC24",
    # FRD Normandie
    "14": "FRD11", "50": "FRD12", "61": "FRD13", "27": "FRD21", "76": "FRD22",
    # FRE Hauts-de-France
    "59": "FRE11", "62": "FRE12", "02": "FRE21", "60": "FRE22", "80": "FRE23",
    # FRF Grand Est
    "67": "FRF11", "68": "FRF12",
    "08": "FRF21", "10": "FRF22", "51": "FRF23", "52": "FRF24",
    "54": "FRF31", "55": "FRF32", "57": "FRF33", "88": "FRF34",
    # FRG Pays de la Loire
    "44": "FRG01", "49": "FRG02", "53": "FRG03", "72": "FRG04", "85": "FRG05",
    # FRH Bretagne
    "22": "FRH01", "29": "FRH02", "35": "FRH03", "56": "FRH04",
    # FRI Nouvelle-Aquitaine
    "24": "FRI11", "33": "FRI12", "40": "FRI13", "47": "FRI14", "64": "FRI15",
    "19": "FRI21", "23": "FRI22", "87": "FRI23",
    "16": "FRI31", "17": "FRI32", "79": "FRI33", "86": "FRI34",
    # FRJ Occitanie
    "11": "FRJ11", "30": "FRJ12", "34": "FRJ13", "48": "FRJ14", "66": "FRJ15",
    "09": "FRJ21", "12": "FRJ22", "31": "FRJ23", "32": "FRJ24",
    "46": "FRJ25", "65": "FRJ26", "81": "FRJ27", "82": "FRJ28",
    # FRK Auvergne-Rhône-Alpes
    "03": "FRK11", "15": "FRK12", "43": "FRK13", "63": "FRK14",
    "01": "FRK21", "07": "FRK22", "26": "FRK23", "38": "FRK24",
    "42": "FRK25", "69": "FRK26", "73": "FRK27", "74": "FRK28",
    # FRL Provence-Alpes-Côte d'Azur
    "04": "FRL01", "05": "FRL02", "06": "FRL03", "13": "FRL04", "83": "FRL05", "84": "FRL06",
    # FRM Corse
    "2A": "FRM01", "2B": "FRM02",
}  # fmt: skip

# NUTS 2013: département → NUTS 3 (the codes in MeteoAlarm's France feed).
_NUTS_2013: Final[dict[str, str]] = {
    # FR1 Île-de-France (unchanged in 2016)
    "75": "FR101", "77": "FR102", "78": "FR103", "91": "FR104",
    "92": "FR105", "93": "FR106", "94": "FR107", "95": "FR108",
    # FR21 Champagne-Ardenne, FR22 Picardie, FR23 Haute-Normandie, FR24 Centre, FR25 Basse-Normandie, FR26 Bourgogne
    "08": "FR211", "10": "FR212", "51": "FR213", "52": "FR214",
    "02": "FR221", "60": "FR222", "80": "FR223",
    "27": "FR231", "76": "FR232",
    "18": "FR241", "28": "FR242", "36": "FR243", "37": "FR244", "41": "FR245", "45": "FR246",
    "14": "FR251", "50": "FR252", "61": "FR253",
    "21": "FR261", "58": "FR262", "71": "FR263", "89": "FR264",
    # FR30 Nord-Pas-de-Calais
    "59": "FR301", "62": "FR302",
    # FR41 Lorraine, FR42 Alsace, FR43 Franche-Comté
    "54": "FR411", "55": "FR412", "57": "FR413", "88": "FR414",
    "67": "FR421", "68": "FR422",
    "25": "FR431", "39": "FR432", "70": "FR433", "90": "FR434",
    # FR51 Pays de la Loire, FR52 Bretagne, FR53 Poitou-Charentes
    "44": "FR511", "49": "FR512", "53": "FR513", "72": "FR514", "85": "FR515",
    "22": "FR521", "29": "FR522", "35": "FR523", "56": "FR524",
    "16": "FR531", "17": "FR532", "79": "FR533", "86": "FR534",
    # FR61 Aquitaine, FR62 Midi-Pyrénées, FR63 Limousin
    "24": "FR611", "33": "FR612", "40": "FR613", "47": "FR614", "64": "FR615",
    "09": "FR621", "12": "FR622", "31": "FR623", "32": "FR624",
    "46": "FR625", "65": "FR626", "81": "FR627", "82": "FR628",
    "19": "FR631", "23": "FR632", "87": "FR633",
    # FR71 Rhône-Alpes, FR72 Auvergne
    "01": "FR711", "07": "FR712", "26": "FR713", "38": "FR714",
    "42": "FR715", "69": "FR716", "73": "FR717", "74": "FR718",
    "03": "FR721", "15": "FR722", "43": "FR723", "63": "FR724",
    # FR81 Languedoc-Roussillon, FR82 Provence-Alpes-Côte d'Azur, FR83 Corse
    "11": "FR811", "30": "FR812", "34": "FR813", "48": "FR814", "66": "FR815",
    "04": "FR821", "05": "FR822", "06": "FR823", "13": "FR824", "83": "FR825", "84": "FR826",
    "2A": "FR831", "2B": "FR832",
}  # fmt: skip

NUTS3_2021: Final = MappingProxyType(dict(_NUTS_2021))
"""Département → NUTS 3 code (NUTS 2021)."""
NUTS3_2013: Final = MappingProxyType(dict(_NUTS_2013))
"""Département → NUTS 3 code (NUTS 2013, as MeteoAlarm sends them)."""

_NUTS3_TO_DEPARTEMENT: Final = MappingProxyType(
    {code: dep for table in (_NUTS_2021, _NUTS_2013) for dep, code in table.items()}
)

# EMMA_ID → département, as seen in the real MeteoAlarm France capture
# (fixtures/weather/meteoalarm-france-atom-feed.xml).
_EMMA_IDS: Final[dict[str, str]] = {
    "FR029": "06",
    "FR032": "04",
    "FR033": "05",
    "FR034": "38",
    "FR035": "74",
    "FR036": "73",
}
EMMA_IDS: Final = MappingProxyType(dict(_EMMA_IDS))


def departement_name(code: str) -> str:
    """'Corse-du-Sud' for '2A'; KeyError for a code that is not a metropolitan département."""
    return _DEPARTEMENTS[code][0]


def departement_with_article(code: str) -> str:
    """'la Corse-du-Sud', 'les Bouches-du-Rhône', "l'Ain", 'Paris': what follows 'pour' in a sentence."""
    return _DEPARTEMENTS[code][1]


def departement_from_nuts3(code: str) -> str | None:
    """The département of a NUTS 3 code of either vintage (FR718 or FRK28 → '74'); None when unknown."""
    return _NUTS3_TO_DEPARTEMENT.get(code.strip().upper())


def departement_from_emma_id(code: str) -> str | None:
    """The département of a MeteoAlarm EMMA_ID ('FR035' → '74'), for the ids listed above; None otherwise."""
    return EMMA_IDS.get(code.strip().upper())
