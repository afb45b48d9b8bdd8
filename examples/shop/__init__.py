"""A small webshop whose services fail on purpose, so triage has something real to explain.

Instrumented services: gateway, auth, orders, inventory, payments, notifier.
Uninstrumented neighbours: bank (a third-party API) and broker (a message queue).
"""
