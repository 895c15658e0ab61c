from gancompress.cli import main

raise SystemExit(main())
