"""Outbound event webhooks: the endpoints a commune registers, and the worker that signs and posts to them.

`GET/POST/DELETE /v1/event-endpoints`: a commune subscribes an https URL to status events (crieur.events);
each endpoint has its own `whsec_` secret (shown once, sealed with KMS). The events worker (functions/events)
posts each event to every subscribed endpoint with a Standard Webhooks signature (ARCHITECTURE.md §6),
retrying an endpoint that is down with exponential backoff for about 24 hours.
"""
