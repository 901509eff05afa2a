"""Send SMS through SMSClub (smsclub.mobi) from Django."""

__version__ = "0.1.0"
