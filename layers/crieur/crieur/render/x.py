"""How X counts the length of a post: the twitter-text v3 rules, which X applies when it accepts a post.

The text is normalised to NFC, then each code point weighs 1 in the ranges below and 2 elsewhere
(accents, « », ’ and the no-break space weigh 1; the ellipsis … and the narrow no-break space weigh 2);
an emoji weighs 2 whatever its number of code points (ZWJ sequences, skin tones, flags, keycaps); every
URL weighs 23, with or without `https://` ("service-public.fr" is a URL for X), ended where X ends it
(not on trailing punctuation, only on a balanced parenthesis). The limit is 280.

URLs follow twitter-text's extractor (its domain, path and query grammar, and its list of top-level
domains: a name only becomes a URL when it ends in a real TLD). Emoji are recognised by their shape
(pictographic code point with its variation selector, skin tone and ZWJ-joined partners, flags, keycaps,
tag sequences) rather than from the full Unicode list that X uses; both agree on every emoji a mairie
is likely to type (checked against twitter-text's own test list).
"""

from __future__ import annotations

import functools
import re
import unicodedata

MAX_LENGTH = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
MAX_URL_LENGTH = 4096
MAX_TCO_SLUG_LENGTH = 40
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

INVALID_CHARACTERS = re.compile("[\ufffe\ufeff\uffff]")
"""Code points that make X refuse a whole post (a byte-order mark pasted from a document, mostly)."""


_LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263\u0268"
    "\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_CYRILLIC = "\u0400-\u04ff"
_PUNCTUATION = r"!'#%&()*+,\\\-./:;<=>?@\[\]\^_{|}~$"
_SPACES = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_INVALID = "\ufffe\ufeff\uffff"
_DIRECTIONAL = "\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"

_DOMAIN_CHAR = f"[^{_PUNCTUATION}{_SPACES}{_INVALID}{_DIRECTIONAL}]"
# Labels of at most 63 characters and at most 11 of them before the TLD, as DNS allows: twitter-text's
# unbounded repetitions cost quadratic time on long runs of letters and dots.
_SUBDOMAIN = f"(?:(?:{_DOMAIN_CHAR}(?:[_-]|{_DOMAIN_CHAR}){{0,61}})?{_DOMAIN_CHAR}\\.)"
_DOMAIN_NAME = f"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR}){{0,61}})?{_DOMAIN_CHAR}\\.)"
_PUNYCODE = "(?:xn--[-0-9a-z]+)"
_PATH_CHAR = f"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~@|&{_LATIN_ACCENTS}]"
_BALANCED_PARENS = f"\\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\\({_PATH_CHAR}+\\){_PATH_CHAR}*))\\)"
_PATH_END = f"[+\\-a-z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]"
# As twitter-text assembles it: the ending's "or balanced parentheses" alternative ends up applying to the
# whole path segment, so a segment is either "chars, ending on a path-ending char" or one "(…)" group.
_PATH = f"(?:(?:{_PATH_CHAR}*(?:{_BALANCED_PARENS}{_PATH_CHAR}*)*{_PATH_END}|{_BALANCED_PARENS})|(?:@{_PATH_CHAR}+/))"
_QUERY_CHAR = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END = r"[a-z0-9\-_&=#/]"
_PRECEDING = f"(?:[^A-Za-z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]|^)"
_NO_PROTOCOL_AFTER = re.compile(r"[-_./]$")
"""A name right after one of these is part of a word ("fichier_v2.pdf"), never a URL without protocol."""

_PICTOGRAPHIC = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u2388\u23cf\u23e9-\u23f3"
    "\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c"
    "\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f\U0001f12f"
    "\U0001f16c-\U0001f171\U0001f17e\U0001f17f\U0001f18e\U0001f191-\U0001f19a\U0001f1ad-\U0001f1e5"
    "\U0001f201-\U0001f20f\U0001f21a\U0001f22f\U0001f232-\U0001f23a\U0001f23c-\U0001f23f\U0001f249-\U0001f3fa"
    "\U0001f400-\U0001f53d\U0001f546-\U0001f64f\U0001f680-\U0001f6ff\U0001f774-\U0001f77f\U0001f7d5-\U0001f7ff"
    "\U0001f80c-\U0001f80f\U0001f848-\U0001f84f\U0001f85a-\U0001f85f\U0001f888-\U0001f88f\U0001f8ae-\U0001f8ff"
    "\U0001f90c-\U0001f93a\U0001f93c-\U0001f945\U0001f947-\U0001faff\U0001fc00-\U0001fffd"
)
# Emoji data as twitter-text's Unicode list has it: the code points that take a skin tone, those whose emoji
# form is written with the variation selector U+FE0F, and the regions that have a flag.
_MODIFIER_BASES = (
    "\u261d\u26f9\u270a-\u270d\U0001f385\U0001f3c2-\U0001f3c4\U0001f3c7\U0001f3ca-\U0001f3cc\U0001f442\U0001f443"
    "\U0001f446-\U0001f450\U0001f466-\U0001f469\U0001f46b-\U0001f46e\U0001f470-\U0001f478\U0001f47c"
    "\U0001f481-\U0001f483\U0001f485-\U0001f487\U0001f4aa\U0001f574\U0001f575\U0001f57a\U0001f590\U0001f595"
    "\U0001f596\U0001f645-\U0001f647\U0001f64b-\U0001f64f\U0001f6a3\U0001f6b4-\U0001f6b6\U0001f6c0\U0001f6cc"
    "\U0001f90f\U0001f918-\U0001f91c\U0001f91e\U0001f91f\U0001f926\U0001f930-\U0001f939\U0001f93d\U0001f93e"
    "\U0001f9b5\U0001f9b6\U0001f9b8\U0001f9b9\U0001f9bb\U0001f9cd-\U0001f9cf\U0001f9d1-\U0001f9dd"
)
_VARIATION_BASES = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u2328\u23cf\u23ed-\u23ef\u23f1\u23f2"
    "\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb\u25fc\u2600-\u2604\u260e\u2611\u2618\u261d\u2620\u2622"
    "\u2623\u2626\u262a\u262e\u262f\u2638-\u263a\u2640\u2642\u265f\u2660\u2663\u2665\u2666\u2668\u267b\u267e"
    "\u2692\u2694-\u2697\u2699\u269b\u269c\u26a0\u26b0\u26b1\u26c8\u26cf\u26d1\u26d3\u26e9\u26f0\u26f1\u26f4"
    "\u26f7-\u26f9\u2702\u2708\u2709\u270c\u270d\u270f\u2712\u2714\u2716\u271d\u2721\u2733\u2734\u2744\u2747"
    "\u2763\u2764\u27a1\u2934\u2935\u2b05-\u2b07\u3030\u303d\u3297\u3299\U0001f170\U0001f171\U0001f17e\U0001f17f"
    "\U0001f202\U0001f237\U0001f321\U0001f324-\U0001f32c\U0001f336\U0001f37d\U0001f396\U0001f397"
    "\U0001f399-\U0001f39b\U0001f39e\U0001f39f\U0001f3cb-\U0001f3ce\U0001f3d4-\U0001f3df\U0001f3f3\U0001f3f5"
    "\U0001f3f7\U0001f43f\U0001f441\U0001f4fd\U0001f549\U0001f54a\U0001f56f\U0001f570\U0001f573-\U0001f579"
    "\U0001f587\U0001f58a-\U0001f58d\U0001f590\U0001f5a5\U0001f5a8\U0001f5b1\U0001f5b2\U0001f5bc"
    "\U0001f5c2-\U0001f5c4\U0001f5d1-\U0001f5d3\U0001f5dc-\U0001f5de\U0001f5e1\U0001f5e3\U0001f5e8\U0001f5ef"
    "\U0001f5f3\U0001f5fa\U0001f6cb\U0001f6cd-\U0001f6cf\U0001f6e0-\U0001f6e5\U0001f6e9\U0001f6f0\U0001f6f3"
)
_FLAG_REGIONS = (
    "AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ "
    "CA CC CD CF CG CH CI CK CL CM CN CO CP CR CU CV CW CX CY CZ DE DG DJ DK DM DO DZ EA EC EE EG EH ER ES ET EU FI FJ "
    "FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU IC ID IE IL IM IN IO IQ IR "
    "IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM "
    "MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT "
    "PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TA TC TD TF TG TH TJ TK TL "
    "TM TN TO TR TT TV TW TZ UA UG UM UN US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"
)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The URL, ASCII-domain, t.co and emoji patterns, compiled on first use (1,500 TLDs: not at import)."""
    tlds = "|".join(sorted((_GENERIC_TLDS + _COUNTRY_TLDS).split(), key=len, reverse=True))
    tld = f"(?:(?:{tlds})(?=[^0-9a-z@+-]|$))"
    domain = f"(?:{_SUBDOMAIN}{{0,10}}{_DOMAIN_NAME}(?:{tld}|{_PUNYCODE}))"
    url = re.compile(
        f"({_PRECEDING})((https?://)?({domain})(?::[0-9]+)?(/{_PATH}*)?(?:\\?{_QUERY_CHAR}*{_QUERY_END})?)",
        re.IGNORECASE,
    )
    ascii_domain = re.compile(f"(?:[\\-a-z0-9{_LATIN_ACCENTS}]+\\.)+(?:{tld}|{_PUNYCODE})", re.IGNORECASE)
    tco = re.compile(f"https?://t\\.co/([a-z0-9]+)(?:\\?{_QUERY_CHAR}*{_QUERY_END})?", re.IGNORECASE)
    element = f"(?:[{_VARIATION_BASES}]\ufe0f|[{_MODIFIER_BASES}][\U0001f3fb-\U0001f3ff]|[{_PICTOGRAPHIC}])"
    flags = "|".join("".join(chr(0x1F1A5 + ord(letter)) for letter in region) for region in _FLAG_REGIONS.split())
    emoji = re.compile(
        "[#*0-9]\ufe0f?\u20e3"  # keycap
        f"|{flags}"  # a country's flag: two regional indicators
        "|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"  # a subdivision's flag (tag sequence)
        f"|{element}(?:\u200d{element})*"  # a pictograph, with its presentation or skin tone, and its ZWJ partners
    )
    return url, ascii_domain, tco, emoji


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL X finds in `text` (already NFC), in code points, end excluded."""
    if "." not in text:
        return []
    url_pattern, ascii_domain, tco, _ = _patterns()
    spans: list[tuple[int, int]] = []
    for match in url_pattern.finditer(text):
        before, url, protocol, domain, path = match.group(1, 2, 3, 4, 5)
        end = match.end()
        start = end - len(url)
        try:
            punycode = domain.encode("idna")
        except UnicodeError:
            continue
        if len(protocol or "https://") + len(url) - len(domain) + len(punycode) > MAX_URL_LENGTH:
            continue
        if protocol is None:
            # Without a protocol, only ASCII names count ("mairie.fr", not "mairie-évry.fr"), and the path
            # (if any) goes with the last of them.
            if _NO_PROTOCOL_AFTER.search(before):
                continue
            found = [(start + name.start(), start + name.end()) for name in ascii_domain.finditer(domain)]
            if found and path:
                # twitter-text skips the length of "last name + path", counted from where that name starts.
                last_start, last_end = found[-1]
                found[-1] = (last_start, last_end + len(url) - len(domain))
            spans += found
            continue
        short = tco.match(url)
        if short:
            if len(short.group(1)) > MAX_TCO_SLUG_LENGTH:
                continue
            end = start + len(short.group(0))
        spans.append((start, end))
    return spans


def _weight(char: str) -> int:
    code = ord(char)
    return 1 if any(low <= code <= high for low, high in _LIGHT_RANGES) else 2


def weighted_length(text: str) -> int:
    """The length X checks against its 280 limit."""
    text = unicodedata.normalize("NFC", text)
    urls = dict(url_spans(text))
    emoji = {match.start(): match.end() for match in _patterns()[3].finditer(text)}
    total, index = 0, 0
    while index < len(text):
        if index in urls:
            total, index = total + URL_WEIGHT, urls[index]
        elif index in emoji:
            total, index = total + EMOJI_WEIGHT, emoji[index]
        else:
            total, index = total + _weight(text[index]), index + 1
    return total


# twitter-text's list of top-level domains (IANA's root zone as twitter-text ships it).
_GENERIC_TLDS = (
    "aaa aarp abarth abb abbott abbvie abc able abogado abudhabi academy accenture accountant accountants "
    "aco active actor adac ads adult aeg aero aetna afamilycompany afl africa agakhan agency aig aigo "
    "airbus airforce airtel akdn alfaromeo alibaba alipay allfinanz allstate ally alsace alstom "
    "americanexpress americanfamily amex amfam amica amsterdam analytics android anquan anz aol "
    "apartments app apple aquarelle arab aramco archi army arpa art arte asda asia associates athleta "
    "attorney auction audi audible audio auspost author auto autos avianca aws axa azure baby baidu "
    "banamex bananarepublic band bank bar barcelona barclaycard barclays barefoot bargains baseball "
    "basketball bauhaus bayern bbc bbt bbva bcg bcn beats beauty beer bentley berlin best bestbuy bet "
    "bharti bible bid bike bing bingo bio biz black blackfriday blanco blockbuster blog bloomberg blue "
    "bms bmw bnl bnpparibas boats boehringer bofa bom bond boo book booking boots bosch bostik boston bot "
    "boutique box bradesco bridgestone broadway broker brother brussels budapest bugatti build builders "
    "business buy buzz bzh cab cafe cal call calvinklein cam camera camp cancerresearch canon capetown "
    "capital capitalone car caravan cards care career careers cars cartier casa case caseih cash casino "
    "cat catering catholic cba cbn cbre cbs ceb center ceo cern cfa cfd chanel channel charity chase chat "
    "cheap chintai chloe christmas chrome chrysler church cipriani circle cisco citadel citi citic city "
    "cityeats claims cleaning click clinic clinique clothing cloud club clubmed coach codes coffee "
    "college cologne com comcast commbank community company compare computer comsec condos construction "
    "consulting contact contractors cooking cookingchannel cool coop corsica country coupon coupons "
    "courses cpa credit creditcard creditunion cricket crown crs cruise cruises csc cuisinella cymru cyou "
    "dabur dad dance data date dating datsun day dclk dds deal dealer deals degree delivery dell deloitte "
    "delta democrat dental dentist desi design dev dhl diamonds diet digital direct directory discount "
    "discover dish diy dnp docs doctor dodge dog doha domains doosan dot download drive dtv dubai duck "
    "dunlop duns dupont durban dvag dvr earth eat eco edeka edu education email emerck energy engineer "
    "engineering enterprises epost epson equipment ericsson erni esq estate esurance etisalat eurovision "
    "eus events everbank exchange expert exposed express extraspace fage fail fairwinds faith family fan "
    "fans farm farmers fashion fast fedex feedback ferrari ferrero fiat fidelity fido film final finance "
    "financial fire firestone firmdale fish fishing fit fitness flickr flights flir florist flowers "
    "flsmidth fly foo food foodnetwork football ford forex forsale forum foundation fox free fresenius "
    "frl frogans frontdoor frontier ftr fujitsu fujixerox fun fund furniture futbol fyi gal gallery gallo "
    "gallup game games gap garden gay gbiz gdn gea gent genting george ggee gift gifts gives giving glade "
    "glass gle global globo gmail gmbh gmo gmx godaddy gold goldpoint golf goo goodhands goodyear goog "
    "google gop got gov grainger graphics gratis green gripe grocery group guardian gucci guge guide "
    "guitars guru hair hamburg hangout haus hbo hdfc hdfcbank health healthcare help helsinki here hermes "
    "hgtv hiphop hisamitsu hitachi hiv hkt hockey holdings holiday homedepot homegoods homes homesense "
    "honda honeywell horse hospital host hosting hot hoteles hotels hotmail house how hsbc htc hughes "
    "hyatt hyundai ibm icbc ice icu ieee ifm iinet ikano imamat imdb immo immobilien inc industries "
    "infiniti info ing ink institute insurance insure int intel international intuit investments ipiranga "
    "irish iselect ismaili ist istanbul itau itv iveco iwc jaguar java jcb jcp jeep jetzt jewelry jio jlc "
    "jll jmp jnj jobs joburg jot joy jpmorgan jprs juegos juniper kaufen kddi kerryhotels kerrylogistics "
    "kerryproperties kfh kia kim kinder kindle kitchen kiwi koeln komatsu kosher kpmg kpn krd kred "
    "kuokgroup kyoto lacaixa ladbrokes lamborghini lamer lancaster lancia lancome land landrover lanxess "
    "lasalle lat latino latrobe law lawyer lds lease leclerc lefrak legal lego lexus lgbt liaison lidl "
    "life lifeinsurance lifestyle lighting like lilly limited limo lincoln linde link lipsy live living "
    "lixil llc llp loan loans locker locus loft lol london lotte lotto love lpl lplfinancial ltd ltda "
    "lundbeck lupin luxe luxury macys madrid maif maison makeup man management mango map market marketing "
    "markets marriott marshalls maserati mattel mba mcd mcdonalds mckinsey med media meet melbourne meme "
    "memorial men menu meo merckmsd metlife miami microsoft mil mini mint mit mitsubishi mlb mls mma mobi "
    "mobile mobily moda moe moi mom monash money monster montblanc mopar mormon mortgage moscow moto "
    "motorcycles mov movie movistar msd mtn mtpc mtr museum mutual mutuelle nab nadex nagoya name "
    "nationwide natura navy nba nec net netbank netflix network neustar new newholland news next "
    "nextdirect nexus nfl ngo nhk nico nike nikon ninja nissan nissay nokia northwesternmutual norton now "
    "nowruz nowtv nra nrw ntt nyc obi observer off office okinawa olayan olayangroup oldnavy ollo omega "
    "one ong onion onl online onyourside ooo open oracle orange org organic orientexpress origins osaka "
    "otsuka ott ovh page pamperedchef panasonic panerai paris pars partners parts party passagens pay "
    "pccw pet pfizer pharmacy phd philips phone photo photography photos physio piaget pics pictet "
    "pictures pid pin ping pink pioneer pizza place play playstation plumbing plus pnc pohl poker politie "
    "porn post pramerica praxi press prime pro prod productions prof progressive promo properties "
    "property protection pru prudential pub pwc qpon quebec quest qvc racing radio raid read realestate "
    "realtor realty recipes red redstone redumbrella rehab reise reisen reit reliance ren rent rentals "
    "repair report republican rest restaurant review reviews rexroth rich richardli ricoh rightathome ril "
    "rio rip rmit rocher rocks rodeo rogers room rsvp rugby ruhr run rwe ryukyu saarland safe safety "
    "sakura sale salon samsclub samsung sandvik sandvikcoromant sanofi sap sapo sarl sas save saxo sbi "
    "sbs sca scb schaeffler schmidt scholarships school schule schwarz science scjohnson scor scot search "
    "seat secure security seek select sener services ses seven sew sex sexy sfr shangrila sharp shaw "
    "shell shia shiksha shoes shop shopping shouji show showtime shriram silk sina singles site ski skin "
    "sky skype sling smart smile sncf soccer social softbank software sohu solar solutions song sony soy "
    "space spiegel sport spot spreadbetting srl srt stada staples star starhub statebank statefarm "
    "statoil stc stcgroup stockholm storage store stream studio study style sucks supplies supply support "
    "surf surgery suzuki swatch swiftcover swiss sydney symantec systems tab taipei talk taobao target "
    "tatamotors tatar tattoo tax taxi tci tdk team tech technology tel telecity telefonica temasek tennis "
    "teva thd theater theatre tiaa tickets tienda tiffany tips tires tirol tjmaxx tjx tkmaxx tmall today "
    "tokyo tools top toray toshiba total tours town toyota toys trade trading training travel "
    "travelchannel travelers travelersinsurance trust trv tube tui tunes tushu tvs ubank ubs uconnect "
    "unicom university uno uol ups vacations vana vanguard vegas ventures verisign vermögensberater "
    "vermögensberatung versicherung vet viajes video vig viking villas vin vip virgin visa vision vista "
    "vistaprint viva vivo vlaanderen vodka volkswagen volvo vote voting voto voyage vuelos wales walmart "
    "walter wang wanggou warman watch watches weather weatherchannel webcam weber website wed wedding "
    "weibo weir whoswho wien wiki williamhill win windows wine winners wme wolterskluwer woodside work "
    "works world wow wtc wtf xbox xerox xfinity xihuan xin xperia xxx xyz yachts yahoo yamaxun yandex "
    "yodobashi yoga yokohama you youtube yun zappos zara zero zip zippo zone zuerich дети католик ком "
    "москва онлайн орг рус сайт קום ابوظبي اتصالات ارامكو العليان بازار بيتك شبكة عرب كاثوليك كوم موبايلي "
    "موقع همراه कॉम नेट संगठन คอม みんな クラウド グーグル コム ストア セール ファッション ポイント 世界 "
    "中信 中文网 企业 佛山 信息 健康 八卦 公司 公益 商城 商店 商标 嘉里 嘉里大酒店 在线 大众汽车 大拿 "
    "天主教 娱乐 家電 工行 广东 微博 慈善 我爱你 手机 手表 招聘 政务 政府 新闻 时尚 書籍 机构 淡马锡 游戏 "
    "点看 珠宝 移动 组织机构 网址 网店 网站 网络 联通 诺基亚 谷歌 购物 通販 集团 電訊盈科 飞利浦 食品 "
    "餐厅 香格里拉 닷넷 닷컴 삼성 "
)

_COUNTRY_TLDS = (
    "ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br "
    "bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee "
    "eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm "
    "hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li "
    "lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne "
    "nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc "
    "sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tp tr tt "
    "tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw ελ ευ бг бел ею мкд мон рф "
    "срб укр қаз հայ الاردن البحرين الجزائر السعودية المغرب امارات ایران بارت بھارت تونس سودان سورية عراق "
    "عمان فلسطين قطر مصر مليسيا موريتانيا پاکستان ڀارت भारत भारतम् भारोत বাংলা ভারত ভাৰত ਭਾਰਤ ભારત ଭାରତ "
    "இந்தியா இலங்கை சிங்கப்பூர் భారత్ ಭಾರತ ഭാരതം ලංකා ไทย ລາວ გე 中国 中國 台湾 台灣 新加坡 澳門 香港 "
    "한국 "
)
