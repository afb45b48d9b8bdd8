from otel_triage.cli.main import main

main()
