"""The central read side: queries over the warehouse the ingest fills (docs/warehouse-analytics.md).

``central.reader.WarehouseReader`` answers every question of the central team (runs, a run's
report exactly as the gateway gives it, traceability, compliance, giveaway, shelf life, the
fleet) as the row types of ``central.rows``; its errors are ``central.errors``.
"""
