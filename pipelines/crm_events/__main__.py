"""`python -m pipelines.crm_events`: run the Bitrix24 event receiver (see `receiver.py`)."""

from pipelines.crm_events.receiver import main

raise SystemExit(main())
