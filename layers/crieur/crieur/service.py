"""Use cases behind the HTTP API: publish, preview, retract, read publications, manage and test channels."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError
from ulid import ULID

from crieur.billing import PriceList, billing_month, estimate, price_list
from crieur.channels import ADAPTERS, build_adapter
from crieur.channels.base import (
    AudienceChannel,
    ChannelCheck,
    ChannelError,
    PermanentChannelError,
    RenderedPost,
    SkipDelivery,
)
from crieur.credentials import CredentialVault
from crieur.delivery import fail_undeliverable
from crieur.errors import Conflict, InvalidInput, NotFound, OverBudget, Unavailable
from crieur.events import NO_EVENTS, Events, budget_reached, channel_needs_reconnect, emit, publication_finished
from crieur.fanout import Fanout
from crieur.media import MediaFetcher
from crieur.models import (
    ChannelConfigRequest,
    ChannelConfigView,
    ChannelList,
    ChannelName,
    ChannelPreview,
    Delivery,
    DeliveryError,
    FanoutMessage,
    MediaPreview,
    Preview,
    Publication,
    PublicationContent,
    PublicationEdit,
    PublicationPage,
    PublicationRequest,
    PublicationStatus,
    ReleaseRequest,
    utc_now,
)
from crieur.problems import field_errors
from crieur.redaction import secret_values, secrets_hidden
from crieur.schedule import Scheduling
from crieur.store import ChannelRecord, InvalidCursor, Metering, Store

if TYPE_CHECKING:
    import httpx

logger = Logger(child=True)


def new_publication_id() -> str:
    return f"pub_{ULID()}"


@dataclass
class PublicationService:
    store: Store
    fanout: Fanout
    vault: CredentialVault
    http: Callable[[], httpx.Client]
    scheduling: Callable[[], Scheduling] | None = None
    prices: Callable[[], PriceList] = price_list
    events: Events = NO_EVENTS
    """Status events for the commune's endpoints (crieur.events): queued, never waited on."""
    settings_cache_seconds: float = 30.0
    """How long this container trusts a commune's budget it read (§8: cached parameter reads). Its channel list is
    read by every publication: a channel enabled elsewhere, or marked for reconnection by a deliver function, must
    count from the next publication on."""
    _budgets: dict[str, tuple[float, Decimal | None]] = field(default_factory=dict, init=False, repr=False)

    # --- publications -----------------------------------------------------------------------------------

    def publish(self, commune: str, request: PublicationRequest) -> Publication:
        """Stores the publication with one delivery per channel, then fans it out once.

        A channel whose credentials the provider refused is `skipped` at once with the reason, instead of
        failing after the attempt: the mairie is told to reconnect it.
        """
        targets = self._targets(commune, request)
        self._check_overrides(request, targets)
        sending = [name for name, record in targets.items() if record.reconnect_reason is None]
        cost, over_budget = self._within_budget(commune, request, {name: targets[name] for name in sending})
        if request.publish_at is not None:
            scheduled = self._schedule(commune, request, list(targets), cost, over_budget)
            if over_budget:
                self._budget_reached(commune, scheduled.id)
            return scheduled
        now = utc_now()
        deliveries = {
            channel: Delivery(status="pending", updated_at=now)
            if record.reconnect_reason is None
            else Delivery(
                status="skipped",
                updated_at=now,
                error=DeliveryError(code="needs_reconnect", message=record.reconnect_reason),
            )
            for channel, record in targets.items()
        }
        publication = Publication(
            **request.model_dump(exclude={"channels"}),
            channels=list(targets),
            id=new_publication_id(),
            commune=commune,
            status="publishing",
            created_at=now,
            deliveries=deliveries,
            cost_estimate_eur=float(cost),
            over_budget=over_budget,
        )
        pending: list[str] = [channel for channel, delivery in deliveries.items() if delivery.status == "pending"]
        if not pending:
            self.store.create_publication(publication)
            final = self.store.finish_if_settled(commune, publication.id)
            emit(self.events, [publication_finished(commune, publication.id, final)])
            return self.get_publication(commune, publication.id)
        fee = self._fee()
        self.store.create_publication(publication, fee=fee)  # one transaction: the publication, its deliveries, its fee
        message = FanoutMessage(commune=commune, publication_id=publication.id, publication=publication)
        self._fan_out(message, pending, fee)  # the message carries the publication: its deliveries do not read it
        if over_budget:
            self._budget_reached(commune, publication.id)
        logger.info("publication accepted", extra={"publication_id": publication.id, "channels": pending})
        return publication.model_copy(update={"billed_ht_eur": float(fee.amount)})  # as written: no read back

    def _within_budget(
        self, commune: str, request: PublicationRequest, channels: dict[ChannelName, ChannelRecord]
    ) -> tuple[Decimal, bool]:
        """The TTC estimate, and whether it goes over the monthly budget. Over budget, news is refused
        (402); weather and critical alerts are sent, billed and flagged, never refused."""
        prices = self.prices()
        texts = {channel: _text_for(request, channel) for channel in channels}
        units = {}
        for name, record in channels.items():
            if not issubclass(ADAPTERS[name], AudienceChannel):
                continue
            draft = _draft(commune, request, list(channels))
            try:
                adapter = build_adapter(name, record.settings, None, self.http)
            except ChannelError:  # settings no longer valid: the delivery fails with the reason, costing nothing
                units[name] = 0
                continue
            if isinstance(adapter, AudienceChannel):
                units[name] = _audience_units(adapter, draft)[1]
        cost = estimate(prices, texts, units)
        budget = self._budget(commune)
        if budget is None:
            return cost, False
        spent = prices.with_vat(self.store.month_amount_ht(commune, billing_month(utc_now())))
        if spent + cost <= budget:
            return cost, False
        if request.category == "weather" or request.urgency == "critical":
            logger.warning("alert sent over budget", extra={"commune": commune})
            return cost, True
        remaining = max(budget - spent, Decimal(0))
        raise OverBudget(
            f"Cette publication coûterait {cost} € TTC ; il reste {remaining} € sur le budget du mois ({budget} €).",
            extensions={"cost_estimate_eur": float(cost), "remaining_budget_eur": float(remaining)},
        )

    def _budget_reached(self, commune: str, publication_id: str) -> None:
        """usage.budget_reached, once per commune and month: the first publication sent over budget claims it
        (one conditional write, only on this already exceptional path)."""
        month = billing_month(utc_now())
        try:
            if not self.store.claim_budget_event(commune, month):
                return
            budget = self.store.budget(commune)
            spent = self.prices().with_vat(self.store.month_amount_ht(commune, month))
            event = budget_reached(commune, month, publication_id, float(budget or 0), float(spent))
            if not emit(self.events, [event]):
                self.store.release_budget_event(commune, month)
        except Exception:  # the publication is out: a status event never fails it
            logger.exception("usage.budget_reached not emitted", extra={"commune": commune})

    def _fee(self) -> Metering:
        """A publication's fee, billed in the transaction that sends it out (its creation, or its release)."""
        return Metering(month=billing_month(utc_now()), unit="publication", unit_price=self.prices().publication)

    def _schedule(
        self,
        commune: str,
        request: PublicationRequest,
        channels: list[ChannelName],
        cost: Decimal,
        over_budget: bool,
    ) -> Publication:
        """Stores the publication as scheduled and creates its one-time schedule (ARCHITECTURE.md §2)."""
        assert request.publish_at is not None
        now = utc_now()
        publication = Publication(
            **request.model_dump(exclude={"channels"}),
            channels=channels,
            id=new_publication_id(),
            commune=commune,
            status="scheduled",
            created_at=now,
            deliveries={channel: Delivery(status="pending", updated_at=now) for channel in channels},
            cost_estimate_eur=float(cost),
            over_budget=over_budget,
        )
        self.store.create_publication(publication)
        self._set_schedule(
            ReleaseRequest(commune=commune, publication_id=publication.id, version=1, channels=channels),
            request.publish_at,
        )
        logger.info("publication scheduled", extra={"publication_id": publication.id, "at": request.publish_at})
        return publication

    def _set_schedule(self, release: ReleaseRequest, at: datetime) -> None:
        if self.scheduling is None:
            raise RuntimeError("this function cannot schedule publications")
        try:
            self.scheduling().schedule(release, at)
        except Exception as failure:
            logger.exception("scheduling failed", extra={"publication_id": release.publication_id})
            publication = self.get_publication(release.commune, release.publication_id)
            self.store.cancel_scheduled(release.commune, release.publication_id, list(publication.deliveries))
            raise Unavailable(
                "La programmation n'a pas pu être enregistrée : la publication est annulée, réessayez dans quelques "
                "minutes."
            ) from failure

    def edit(self, commune: str, publication_id: str, edit: PublicationEdit) -> Publication:
        """Changes the text or the time of a scheduled publication (its schedule follows)."""
        publication = self.get_publication(commune, publication_id)
        version = self.store.scheduled_version(commune, publication_id)
        if version is None:
            raise Conflict(
                f"Seule une publication programmée peut être modifiée ; celle-ci est « {publication.status} »."
            )
        changes = edit.model_dump(exclude_unset=True)
        if "publish_at" in changes and changes["publish_at"] is None:
            raise InvalidInput([("publish_at", "Indiquez la nouvelle heure ; pour annuler, utilisez DELETE.")])
        content = publication.model_dump(include=set(PublicationContent.model_fields))
        try:
            request = PublicationRequest.model_validate({**content, **changes})
        except ValidationError as invalid:
            raise InvalidInput(field_errors(invalid.errors())) from invalid
        targets = self._targets(commune, request)
        self._check_overrides(request, targets)
        new_version = self.store.edit_scheduled(
            commune, publication_id, PublicationContent.model_validate(request.model_dump()), version
        )
        if new_version is None:
            raise Conflict("La publication vient d'être diffusée ou annulée : elle ne peut plus être modifiée.")
        assert request.publish_at is not None
        self._set_schedule(
            ReleaseRequest(
                commune=commune,
                publication_id=publication_id,
                version=new_version,
                channels=list(publication.deliveries),
            ),
            request.publish_at,
        )
        return self.get_publication(commune, publication_id)

    def release(self, release: ReleaseRequest) -> bool:
        """Publishes a scheduled publication when its schedule fires (a second firing, a cancelled
        publication or an edited-away version does nothing)."""
        fee = self._fee()
        if not self.store.release_scheduled(release.commune, release.publication_id, release.version, fee=fee):
            logger.info("nothing to release", extra={"publication_id": release.publication_id})
            return False
        if release.channels is not None:  # every delivery of a scheduled publication is pending until its release
            pending = list(release.channels)
        else:  # a schedule set before its input named the channels
            publication = self.get_publication(release.commune, release.publication_id)
            pending = [name for name, d in publication.deliveries.items() if d.status == "pending"]
        self._fan_out(FanoutMessage(commune=release.commune, publication_id=release.publication_id), pending, fee)
        return True

    def _fan_out(self, message: FanoutMessage, channels: list[str], fee: Metering | None = None) -> None:
        """Sends the one SNS message; when it fails, the deliveries fail with the reason and the `fee` billed with
        the publication's creation or release is credited back (nothing went out)."""
        try:
            self.fanout.send(message, channels)
        except Exception as failure:
            logger.exception("fan-out failed", extra={"publication_id": message.publication_id})
            if fee is not None:
                self.store.credit(message.commune, message.publication_id, fee)
            if message.action == "publish":
                error = DeliveryError(
                    code="fanout_failed",
                    message="La diffusion n'a pas pu démarrer : republiez dans quelques minutes.",
                    provider_message=str(failure)[:500],
                )
                notices = [
                    notice
                    for channel in channels
                    for notice in fail_undeliverable(
                        self.store, message.commune, message.publication_id, channel, error
                    )
                ]
                emit(self.events, notices)
            raise Unavailable(
                f"La publication {message.publication_id} n'a pas pu être transmise aux canaux : "
                "réessayez dans quelques minutes."
            ) from failure

    def _budget(self, commune: str) -> Decimal | None:
        """The commune's monthly budget, read at most once per `settings_cache_seconds` in this container."""
        cached = self._budgets.get(commune)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        budget = self.store.budget(commune)
        self._budgets[commune] = (time.monotonic() + self.settings_cache_seconds, budget)
        return budget

    def _targets(self, commune: str, request: PublicationRequest) -> dict[ChannelName, ChannelRecord]:
        configured = {record.channel: record for record in self.store.list_channels(commune)}
        if request.channels is None:
            targets = {name: configured[name] for name in ADAPTERS if name in configured and configured[name].enabled}
            if not targets:
                raise InvalidInput(
                    [("channels", "Aucun canal n'est activé pour cette commune : configurez-en un (/v1/channels).")]
                )
        else:
            problems = []
            for index, name in enumerate(request.channels):
                record = configured.get(name)
                if record is None:
                    problems.append(
                        (f"channels[{index}]", f"Le canal « {name} » n'est pas configuré pour cette commune.")
                    )
                elif not record.enabled:
                    problems.append((f"channels[{index}]", f"Le canal « {name} » est désactivé."))
            if problems:
                raise InvalidInput(problems)
            targets = {name: configured[name] for name in request.channels}
        stray = [name for name in request.overrides if name not in targets]
        if stray:
            raise InvalidInput(
                [(f"overrides.{name}", f"Personnalisation pour « {name} », qui n'est pas visé.") for name in stray]
            )
        return targets

    def _override_problems(
        self, request: PublicationRequest, targets: dict[ChannelName, ChannelRecord]
    ) -> dict[ChannelName, str]:
        """Channel → why its override cannot be sent as written (too long, too many SMS parts), in French."""
        problems = {}
        for name, override in request.overrides.items():
            adapter = build_adapter(name, targets[name].settings, None, self.http)
            problem = adapter.override_problem(override.text)
            if problem:
                problems[name] = problem
        return problems

    def _check_overrides(self, request: PublicationRequest, targets: dict[ChannelName, ChannelRecord]) -> None:
        """An override is sent as written: one that the channel would have to cut is refused (422)."""
        problems = self._override_problems(request, targets)
        if problems:
            raise InvalidInput([(f"overrides.{name}.text", problem) for name, problem in problems.items()])

    def preview(self, commune: str, request: PublicationRequest) -> Preview:
        """What each target channel would receive: the same rendering code as sending, without credentials."""
        targets = self._targets(commune, request)
        refused = self._override_problems(request, targets)  # shown, not raised: a preview is for finding them
        draft = _draft(commune, request, list(targets))
        media = MediaFetcher(self.http())
        channels = {}
        units: dict[ChannelName, int] = {}
        for name, record in targets.items():
            warnings = [f"{record.reconnect_reason} Ce canal sera ignoré."] if record.reconnect_reason else []
            if name in refused:
                warnings.append(f"overrides.{name}.text : {refused[name]} La publication sera refusée (422).")
            try:
                adapter = build_adapter(name, record.settings, None, self.http(), media)
                rendered = adapter.render(draft)
                recipients = None
                if isinstance(adapter, AudienceChannel):
                    recipients, units[name] = _audience_units(adapter, draft, rendered)
            except SkipDelivery as skip:
                channels[name] = ChannelPreview(skipped=skip.message, warnings=warnings)
            except ChannelError as error:
                channels[name] = ChannelPreview(warnings=[*warnings, error.message])
            else:
                channels[name] = ChannelPreview(
                    text=rendered.text,
                    length=rendered.length,
                    limit=rendered.limit,
                    media=[MediaPreview.model_validate(decision.model_dump()) for decision in rendered.media],
                    warnings=[*warnings, *rendered.warnings],
                    encoding=rendered.encoding,
                    parts=rendered.parts,
                    parts_without_shaping=rendered.parts_without_shaping,
                    recipients=recipients,
                )
        sent = {
            name: shown.text
            for name, shown in channels.items()
            if shown.skipped is None and not targets[name].reconnect_reason
        }
        units = {name: count for name, count in units.items() if name in sent}
        return Preview(channels=channels, cost_estimate_eur=float(estimate(self.prices(), sent, units)))

    def retract(self, commune: str, publication_id: str) -> Publication:
        """Cancels a scheduled publication; deletes a published one on every channel that allows it
        (asking again resumes the deletions)."""
        publication = self.get_publication(commune, publication_id)
        if publication.status == "scheduled":
            if not self.store.cancel_scheduled(commune, publication_id, list(publication.deliveries)):
                raise Conflict("La publication vient d'être diffusée : retirez-la une fois la diffusion terminée.")
            if self.scheduling is not None:
                self.scheduling().unschedule(publication_id)
            return self.get_publication(commune, publication_id)
        if publication.status != "retracted" and not self.store.start_retraction(commune, publication_id):
            raise Conflict(
                "La diffusion de cette publication est en cours : retirez-la une fois terminée."
                if publication.status == "publishing"
                else f"Une publication « {publication.status} » ne peut pas être retirée."
            )
        sent = [channel for channel, delivery in publication.deliveries.items() if delivery.status == "sent"]
        if sent:
            self._fan_out(FanoutMessage(action="retract", commune=commune, publication_id=publication_id), sent)
        return self.get_publication(commune, publication_id)

    def retry(self, commune: str, publication_id: str) -> Publication:
        """Sends again, on the channels where it failed, a publication whose diffusion is over."""
        publication = self.get_publication(commune, publication_id)
        if publication.status not in ("failed", "partially_published"):
            raise Conflict(
                "La diffusion de cette publication est en cours : relancez-la une fois terminée."
                if publication.status == "publishing"
                else f"Une publication « {publication.status} » n'a pas d'envoi en échec à relancer."
            )
        failed = [channel for channel, delivery in publication.deliveries.items() if delivery.status == "failed"]
        if not failed or not self.store.reopen_failed(commune, publication_id, failed):
            raise Conflict("La publication a changé entre-temps : rechargez-la avant de relancer.")
        logger.info("retry requested", extra={"publication_id": publication_id, "channels": failed})
        self._fan_out(FanoutMessage(commune=commune, publication_id=publication_id), failed)
        return self.get_publication(commune, publication_id)

    def get_publication(self, commune: str, publication_id: str) -> Publication:
        publication = self.store.get_publication(commune, publication_id)
        if publication is None:
            raise NotFound(f"Aucune publication {publication_id} pour cette commune.")
        return publication

    def list_publications(
        self, commune: str, limit: int, cursor: str | None, status: PublicationStatus | None
    ) -> PublicationPage:
        try:
            items, next_cursor = self.store.list_publications(commune, limit, cursor, status)
        except InvalidCursor as bad:
            raise InvalidInput([("cursor", "Curseur invalide : reprenez la valeur next_cursor telle quelle.")]) from bad
        return PublicationPage(items=items, next_cursor=next_cursor)

    # --- channel settings -------------------------------------------------------------------------------

    def configure_channel(self, commune: str, channel: ChannelName, request: ChannelConfigRequest) -> ChannelConfigView:
        """Validates settings and credentials against the channel's models; credentials are sealed with KMS."""
        adapter = ADAPTERS[channel]
        problems: list[tuple[str, str]] = []
        settings: dict[str, Any] = {}
        try:
            settings = adapter.settings_model.model_validate(request.settings).model_dump(mode="json")
        except ValidationError as invalid:
            problems += field_errors(invalid.errors(), ("settings",))
        ciphertext = None
        if request.credentials is not None:
            try:
                credentials = adapter.credentials_model.model_validate(request.credentials).model_dump(mode="json")
                ciphertext = self.vault.seal(commune, channel, credentials)
            except ValidationError as invalid:
                problems += field_errors(invalid.errors(), ("credentials",))
        existing = self.store.get_channel(commune, channel)
        needs_credentials = bool(adapter.credentials_model.model_fields)  # website: hosted, nothing to connect
        if (
            needs_credentials
            and request.credentials is None
            and (existing is None or existing.credentials_ciphertext is None)
        ):
            problems.append(("credentials", "Identifiants obligatoires à la première configuration du canal."))
        if problems:
            raise InvalidInput(problems)
        return _view(self.store.put_channel(commune, channel, request.enabled, settings, ciphertext))

    def channel(self, commune: str, channel: ChannelName) -> ChannelConfigView:
        record = self.store.get_channel(commune, channel)
        if record is None:
            raise NotFound(f"Le canal « {channel} » n'est pas configuré pour cette commune.")
        return _view(record)

    def channels(self, commune: str) -> ChannelList:
        return ChannelList(
            items=[_view(record) for record in self.store.list_channels(commune)], available=list(ADAPTERS)
        )

    def test_channel(self, commune: str, channel: ChannelName) -> ChannelCheck:
        """Tries the stored credentials with the provider; a refusal marks the channel for reconnection."""
        record = self.store.get_channel(commune, channel)
        if record is None:
            raise NotFound(f"Le canal « {channel} » n'est pas configuré pour cette commune.")
        try:
            with secrets_hidden() as secrets:
                credentials = (
                    self.vault.open(commune, channel, record.credentials_ciphertext)
                    if record.credentials_ciphertext
                    else None
                )
                secrets.extend(secret_values(credentials))
                result = build_adapter(channel, record.settings, credentials, self.http()).check()
        except PermanentChannelError as refused:
            if refused.code == "needs_reconnect" and self.store.set_reconnect_reason(commune, channel, refused.message):
                emit(self.events, [channel_needs_reconnect(commune, channel, refused.message, None)])
            return ChannelCheck(ok=False, message=refused.message)
        except ChannelError as unavailable:
            return ChannelCheck(ok=False, message=unavailable.message)
        if result.ok and record.reconnect_reason:
            self.store.set_reconnect_reason(commune, channel, None)
        return result

    def remove_channel(self, commune: str, channel: ChannelName) -> None:
        if not self.store.delete_channel(commune, channel):
            raise NotFound(f"Le canal « {channel} » n'est pas configuré pour cette commune.")


def _view(record: ChannelRecord) -> ChannelConfigView:
    return ChannelConfigView(
        channel=record.channel,
        enabled=record.enabled,
        settings=record.settings,
        credentials_set=record.credentials_ciphertext is not None,
        needs_reconnect=record.reconnect_reason is not None,
        reconnect_reason=record.reconnect_reason,
        updated_at=record.updated_at,
    )


def _draft(commune: str, request: PublicationRequest, channels: list[ChannelName]) -> Publication:
    """The publication as the channels would render it, before it exists (previews, estimates)."""
    return Publication(
        **request.model_dump(exclude={"channels"}),
        channels=channels,
        id="pub_preview",
        commune=commune,
        status="publishing",
        created_at=utc_now(),
    )


def _audience_units(
    adapter: AudienceChannel[Any, Any], draft: Publication, rendered: RenderedPost | None = None
) -> tuple[int, int]:
    """(recipients, billable units) of a channel reaching many: each recipient costs its SMS parts, else one."""
    try:
        rendered = rendered or adapter.render(draft)
    except SkipDelivery:
        return 0, 0
    recipients = len(adapter.audience(rendered))
    return recipients, recipients * (rendered.parts or 1)


def _text_for(request: PublicationRequest, channel: ChannelName) -> str:
    """Enough of what the channel will carry to price it (an X post with a URL costs more)."""
    override = request.overrides.get(channel)
    if override is not None:
        return override.text
    return " ".join([request.title, request.body, *(str(link.url) for link in request.links)])
