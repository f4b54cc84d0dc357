// What the mairie reads for the API's codes.

export const CHANNELS = {
  facebook: "Facebook",
  instagram: "Instagram",
  x: "X",
  mastodon: "Mastodon",
  bluesky: "Bluesky",
  website: "Site de la commune",
  wordpress: "WordPress",
  push: "Appli mobile",
  webpush: "Notifications du site",
  sms: "SMS",
  email: "E-mail",
  webhook: "Webhook",
};

export const CATEGORIES = {
  news: "Actualité",
  event: "Événement",
  works: "Travaux",
  alert: "Alerte",
  weather: "Météo",
  council: "Conseil municipal",
  other: "Autre",
};

export const URGENCIES = { normal: "Normale", high: "Importante", critical: "Critique" };

export const PUBLICATION_STATUS = {
  scheduled: "Programmée",
  publishing: "En cours de diffusion",
  published: "Publiée",
  partially_published: "Publiée en partie",
  failed: "Échec",
  cancelled: "Annulée",
  retracted: "Retirée",
};

export const DELIVERY_STATUS = {
  pending: "En attente",
  sending: "Envoi en cours",
  sent: "Envoyé",
  retrying: "Nouvel essai prévu",
  failed: "Échec",
  skipped: "Non envoyé",
  cancelled: "Annulé",
  retracted: "Retiré",
  retract_unsupported: "Retrait impossible",
};

export const IN_FLIGHT = new Set(["pending", "sending", "retrying"]);

export const channelName = (channel) => CHANNELS[channel] || channel;
