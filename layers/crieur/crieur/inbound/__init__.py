"""Inbound webhooks: a commune's existing site (WordPress or any CMS) publishes through Crieur.

`POST /v1/inbound/{commune}/{source}` carries no API key: a Standard Webhooks signature made with the
source's `whsec_` secret is the authentication (ARCHITECTURE.md §2 step 7, §6). The call is mapped to an
ordinary publication request and goes through the same publish use case as the API.
"""
