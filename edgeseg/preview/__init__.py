"""The live preview: the camera picture with the mask overlaid, in a browser.

:class:`~edgeseg.preview.hub.PreviewHub` holds the newest frame and mask (handed over
by the agent, or by ``edgeseg view`` from MQTT) and encodes overlays only for viewers;
:class:`~edgeseg.preview.server.PreviewServer` serves the page, an MJPEG stream, a
JPEG snapshot, JSON stats and Prometheus metrics.
"""
