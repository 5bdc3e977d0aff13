from eiex.cli import main

raise SystemExit(main())
