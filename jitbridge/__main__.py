from jitbridge.cli import main

main()
