"""ShotWatch: open acoustic gunshot detection, location and public-safety evidence system.

The pipeline is a seismic network in air::

    pick -> associate -> locate -> classify -> incident -> review -> dispatch

Each stage is a pure core (``signal``, ``association``, ``location``, ``classification``,
``incidents``, ``dispatch``) behind thin I/O shells (``io``, ``storage``, ``api``, ``cli``,
``sensor``). ``core`` holds the one shared data model, the clock, geodesy and settings.
"""

__version__ = "0.1.0"
