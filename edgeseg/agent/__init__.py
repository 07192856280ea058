"""The camera agent: frames -> gRPC Predict -> masks published over MQTT.

One module per concept, each opening with its contract:

* ``config``    the typed agent config (YAML + ${ENV} + CLI overrides), validated at start.
* ``capture``   the camera/file/stream reader (a watched reader thread per opening) that
                keeps only the newest frame and logs each outage at its start and end.
* ``sources``   what a ``--source`` means (``csi://N`` too), its cheap probe, how it opens.
* ``gst``       GStreamer pipelines through PyGObject's appsink when OpenCV lacks GStreamer.
* ``queues``    the bounded queue that drops the oldest item and counts what it dropped.
* ``backoff``   the retry-delay policy (capped exponential with jitter), pure.
* ``protos``    short names for the TF-Serving wire messages of ``edgeseg.wire`` (no TF).
* ``tensors``   short names over ``edgeseg.wire.tensors``, the one TensorProto codec.
* ``inference`` the gRPC Predict client loop: pipelined, deadline, backoff, drops counted;
                replies decoded where they arrive (class map at the frame's size).
* ``broker``    reaching an MQTT broker (TLS, login, why a connect failed); shared with
                ``edgeseg subscribe`` and ``edgeseg view``.
* ``publisher`` the MQTT side: bounded outbox, every message's outcome (PUBACK reason
                codes), status with Last Will (online/degraded/offline), reconnects.
* ``ledger``    where every captured frame ended: acknowledged or dropped by reason (and
                the optional per-frame file, ``LedgerFile``).
* ``messages``  the encode stage: one frame's ``mask`` and ``meta`` messages, built with
                ``edgeseg.mqtt_contract`` (topic names, codecs, content types).
* ``preview``   the live preview's tap and the ``<prefix>/frame`` JPEG tap (observers).
* ``pipeline``  the loops joined by bounded queues; start/stop. It only wires.
* ``metrics``   the agent's families (ledger totals included) in ``edgeseg.metrics``.
* ``watchdog``  sd_notify (READY, WATCHDOG, STOPPING) over $NOTIFY_SOCKET.
* ``command``   ``edgeseg agent``: argparse, signals, exit codes.

Importing this package is cheap: no module here imports TensorFlow.
"""
