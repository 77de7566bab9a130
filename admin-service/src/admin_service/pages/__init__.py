"""Server-rendered pages: the operator console (`/admin/…`) and the merchant dashboard (`/dashboard/…`)."""
