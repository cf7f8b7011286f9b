"""The application: the command line, doctor, the outage replay, the fleet model
and the replay's timeline. Built on the library; the library never imports it."""
